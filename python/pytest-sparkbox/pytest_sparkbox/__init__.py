"""pytest-sparkbox: a session-scoped `spark` fixture on a real sparkbox
cluster, through Spark Connect.

With a Connect server named (--sparkbox-remote or SPARK_REMOTE) the plugin
starts nothing. Otherwise the first test that asks for `spark` brings a
cluster up (`sparkbox up --connect --json`, the cluster file and name as
sparkbox itself takes them), and the session's end removes it — only a
cluster that did not exist before the session. When a test fails, the
cluster's diagnostics bundle is written (`sparkbox logs --bundle`).
"""

import json
import os
import shutil
import subprocess

import pytest


def pytest_addoption(parser):
    group = parser.getgroup("sparkbox", "a Spark cluster from sparkbox")
    group.addoption("--sparkbox-remote", default=os.environ.get("SPARK_REMOTE"),
                    help="a running Spark Connect server (sc://HOST:PORT); nothing is started (default: SPARK_REMOTE)")
    group.addoption("--sparkbox-file", default=os.environ.get("SPARKBOX_FILE"),
                    help="the cluster file (default: SPARKBOX_FILE, else ./sparkbox.toml when it exists)")
    group.addoption("--sparkbox-name", default=os.environ.get("SPARKBOX_NAME"),
                    help="the cluster's name (default: SPARKBOX_NAME, else the file's)")
    group.addoption("--sparkbox-bin", default=os.environ.get("SPARKBOX", "sparkbox"),
                    help="the sparkbox program (default: SPARKBOX, else sparkbox on PATH)")
    group.addoption("--sparkbox-bundle", default=os.environ.get("SPARKBOX_BUNDLE", "sparkbox-bundle"),
                    help="where the diagnostics bundle goes when a test fails (default: ./sparkbox-bundle)")
    group.addoption("--sparkbox-keep", action="store_true",
                    help="keep the cluster the plugin started")


class Cluster:
    """The cluster of this test session."""

    def __init__(self, config):
        self.config = config
        opt = config.getoption
        self.remote = opt("--sparkbox-remote")
        self.program = opt("--sparkbox-bin")
        self.bundle = os.path.abspath(opt("--sparkbox-bundle"))
        self.keep = opt("--sparkbox-keep")
        self.base = [self.program, "--progress", "plain"]
        if opt("--sparkbox-file"):
            self.base += ["-f", os.path.abspath(opt("--sparkbox-file"))]
        self.name = ["-n", opt("--sparkbox-name")] if opt("--sparkbox-name") else []
        self.info = None
        self.started = False  # by this session: removed at its end
        self.used = False  # a cluster of sparkbox's was reached

    def _run(self, args, capture=True):
        """Runs sparkbox; its progress goes to the terminal, past pytest's capture."""
        if shutil.which(self.program) is None and not os.path.isfile(self.program):
            pytest.exit("pytest-sparkbox: %s is not on PATH — install sparkbox, or give --sparkbox-bin (or SPARKBOX)" % self.program, 4)
        capman = self.config.pluginmanager.getplugin("capturemanager")
        cmd = self.base + args
        if capman is None:
            return subprocess.run(cmd, stdout=subprocess.PIPE if capture else None, text=True)
        with capman.global_and_fixture_disabled():
            return subprocess.run(cmd, stdout=subprocess.PIPE if capture else None, text=True)

    def start(self):
        if self.info is not None:
            return self.info
        if self.remote:
            self.info = {"urls": {"connect": self.remote}}
            return self.info
        before = self._run(["status", "--json"] + self.name)
        try:
            existed = json.loads(before.stdout or "{}").get("state", "absent") != "absent"
        except ValueError:
            existed = False
        up = self._run(["up", "--connect", "--json", "--bundle-on-failure", self.bundle] + self.name)
        self.used = True
        self.started = not existed
        if up.returncode != 0:
            pytest.exit("pytest-sparkbox: `sparkbox up` failed (exit %d); its diagnostics are in %s" % (up.returncode, self.bundle), up.returncode)
        self.info = json.loads(up.stdout)
        if not self.info.get("urls", {}).get("connect"):
            pytest.exit("pytest-sparkbox: the cluster runs no Spark Connect server", 4)
        return self.info

    def finish(self, failed):
        if failed and self.used:
            self._run(["logs", "--bundle", self.bundle] + self.name, capture=False)
        if self.started and not self.keep:
            self._run(["down", "--volumes"] + self.name, capture=False)


def pytest_configure(config):
    config._sparkbox = Cluster(config)


def pytest_sessionfinish(session, exitstatus):
    cluster = getattr(session.config, "_sparkbox", None)
    if cluster is not None:
        cluster.finish(failed=exitstatus not in (0, 5))


@pytest.fixture(scope="session")
def sparkbox_cluster(pytestconfig):
    """What `sparkbox up --json` printed for the session's cluster."""
    return pytestconfig._sparkbox.start()


@pytest.fixture(scope="session")
def spark(sparkbox_cluster):
    """A Spark Connect session on the cluster's Connect server."""
    from pyspark.sql import SparkSession

    session = SparkSession.builder.remote(sparkbox_cluster["urls"]["connect"]).getOrCreate()
    yield session
    session.stop()
