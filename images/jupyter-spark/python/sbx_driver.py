"""sparkbox: starts a PySpark driver JVM the way spark-submit would, faster.

pyspark starts its driver with `bin/spark-submit pyspark-shell`, which runs
one JVM (Spark's launcher) only to compute the java command line of the
real one. The image computed that line at build time (driver-launch.json),
so this module starts the driver JVM directly, with

- the class path spelled out, jar by jar, the configuration directory last
  (it holds spark-defaults.conf, and a class data sharing archive cannot
  cover a directory that is not empty), and
- the image's class data sharing archive (driver.jsa, made at build time by
  `python -m sbx_driver --dump`): the ~12,000 classes a driver loads for a
  session and its first query are mapped instead of read, verified and
  parsed from the jars.

What the launcher would apply from spark-defaults.conf and the environment
is applied here too (spark.driver.memory, spark.driver.defaultJavaOptions,
spark.driver.extraJavaOptions); with any setting only the launcher knows
(an extra class or library path, PYSPARK_SUBMIT_ARGS, SPARK_SUBMIT_OPTS,
...), `start_gateway` returns None and the driver starts the usual way.
"""

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

LAUNCH = "/opt/sparkbox/driver-launch.json"
ARCHIVE = "/opt/sparkbox/driver.jsa"

# -Xshare:auto: an archive the JVM cannot use is skipped, quietly.
_ARCHIVE_OPTIONS = ["-XX:SharedArchiveFile=" + ARCHIVE, "-Xshare:auto", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"]

# Settings the launcher alone knows how to apply.
_LAUNCHER_KEYS = ("spark.driver.extraClassPath", "spark.driver.extraLibraryPath")
_LAUNCHER_ENV = (
    "PYSPARK_SUBMIT_ARGS",
    "SPARK_SUBMIT_OPTS",
    "SPARK_JAVA_OPTS",
    "SPARK_DRIVER_MEMORY",
    "SPARK_MEM",
    "SPARK_TESTING",
    "PYSPARK_GATEWAY_PORT",
)


def conf_dir():
    return os.environ.get("SPARK_CONF_DIR") or os.path.join(os.environ.get("SPARK_HOME", ""), "conf")


def spark_defaults():
    """spark-defaults.conf as a dict, or None when it holds what this simple
    reader might get wrong (escapes, continued lines)."""
    props = {}
    try:
        with open(os.path.join(conf_dir(), "spark-defaults.conf"), encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return props
    except OSError:
        return None
    for line in lines:
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        if "\\" in line:
            return None
        end = 0
        while end < len(line) and not (line[end].isspace() or line[end] in "=:"):
            end += 1
        key, rest = line[:end], line[end:].lstrip()
        if rest[:1] in ("=", ":"):
            rest = rest[1:].lstrip()
        props[key] = rest
    return props


def command(extra_options=(), with_conf_dir=True):
    """The driver's java command line, or None when the launcher must make it."""
    try:
        with open(LAUNCH, encoding="utf-8") as f:
            launch = json.load(f)
    except (OSError, ValueError):
        return None
    props = spark_defaults()
    if props is None or any(k in props for k in _LAUNCHER_KEYS):
        return None
    if any(os.environ.get(name) for name in _LAUNCHER_ENV):
        return None
    java_options = []
    for key in ("spark.driver.defaultJavaOptions", "spark.driver.extraJavaOptions"):
        try:
            java_options += shlex.split(props.get(key, ""))
        except ValueError:
            return None
    if any(o.startswith("-Xmx") for o in java_options):
        return None  # the launcher refuses this with its own message
    classpath = list(launch["classpath"])
    if with_conf_dir:
        classpath.append(conf_dir())
    cmd = [launch["java"], "-cp", ":".join(classpath), "-Xmx" + props.get("spark.driver.memory", "1g")]
    cmd += launch["options"]
    if os.path.isfile(ARCHIVE) and not any(o.startswith("-XX:ArchiveClassesAtExit") for o in extra_options):
        cmd += _ARCHIVE_OPTIONS
    cmd += list(extra_options) + java_options
    cmd += ["org.apache.spark.deploy.SparkSubmit", "pyspark-shell"]
    return cmd


def executor_defaults():
    """Settings that give a notebook's executors the same archive: over the
    same class path, spelled out (spark.executor.extraClassPath comes first;
    the worker's own entries, a folder wildcard whose order differs from
    machine to machine, follow). Empty without an archive."""
    try:
        with open(LAUNCH, encoding="utf-8") as f:
            launch = json.load(f)
    except (OSError, ValueError):
        return {}
    if not os.path.isfile(ARCHIVE):
        return {}
    return {
        "spark.executor.extraClassPath": ":".join(launch["classpath"]),
        "spark.executor.extraJavaOptions": " ".join(_ARCHIVE_OPTIONS),
    }


def start_gateway(extra_options=(), with_conf_dir=True):
    """Starts the driver JVM and makes it pyspark's gateway; returns the JVM's
    process, or None (nothing started) when the usual way must be taken.
    Call before the first SparkContext of this process."""
    from pyspark import SparkContext
    from pyspark import java_gateway
    from pyspark.serializers import UTF8Deserializer, read_int

    with SparkContext._lock:
        if SparkContext._gateway is not None:
            return None
        cmd = command(extra_options, with_conf_dir)
        if cmd is None:
            return None
        info_dir = tempfile.mkdtemp(prefix="sparkbox-driver-")
        try:
            info_file = os.path.join(info_dir, "connection")
            env = dict(os.environ)
            env["SPARK_CONNECT_MODE"] = "0"
            env["_PYSPARK_DRIVER_CONN_INFO_PATH"] = info_file
            # stdin a pipe: the JVM ends when this process does. Ctrl-C in
            # a notebook interrupts the cell, not the driver.
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                env=env,
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
            )
            while proc.poll() is None and not os.path.isfile(info_file):
                time.sleep(0.02)
            if not os.path.isfile(info_file):
                return None
            with open(info_file, "rb") as info:
                port = read_int(info)
                secret = UTF8Deserializer().loads(info)
        finally:
            shutil.rmtree(info_dir, ignore_errors=True)
        # pyspark connects to a running gateway named by these two variables;
        # they are removed at once so that programs this process starts
        # (a `!python app.py` in a notebook) start drivers of their own.
        os.environ["PYSPARK_GATEWAY_PORT"] = str(port)
        os.environ["PYSPARK_GATEWAY_SECRET"] = secret
        try:
            gateway = java_gateway.launch_gateway()
        finally:
            del os.environ["PYSPARK_GATEWAY_PORT"]
            del os.environ["PYSPARK_GATEWAY_SECRET"]
        gateway.proc = proc
        SparkContext._ensure_initialized(gateway=gateway)
        return proc


def dump(archive):
    """Build time: runs a local session through a representative first
    notebook (a session, a query, a shuffle, Parquet, a Python function) and
    writes the classes it loaded to `archive`."""
    from pyspark.sql import SparkSession

    proc = start_gateway(["-XX:ArchiveClassesAtExit=" + archive], with_conf_dir=False)
    if proc is None:
        raise SystemExit("sparkbox: cannot start the driver without the launcher (see sbx_driver.command)")
    spark = SparkSession.builder.master("local[2]").appName("sparkbox: class archive").getOrCreate()
    assert spark.range(1000000).selectExpr("sum(id)").first()[0] == 499999500000
    df = spark.range(1000).selectExpr("id % 7 AS k", "id AS v")
    assert len(df.groupBy("k").sum("v").collect()) == 7
    path = tempfile.mkdtemp(prefix="sparkbox-dump-")
    try:
        df.write.mode("overwrite").parquet(path + "/p")
        assert spark.read.parquet(path + "/p").count() == 1000
        df.write.mode("overwrite").csv(path + "/c")
        assert spark.read.csv(path + "/c").count() == 1000
    finally:
        shutil.rmtree(path, ignore_errors=True)
    assert spark.sparkContext.parallelize(range(10), 2).map(lambda x: x * 2).sum() == 90
    spark.sql("SELECT 1 AS one").toPandas()
    spark.stop()
    # The archive is written when the JVM exits: its stdin closing ends it.
    proc.stdin.close()
    proc.wait(timeout=300)
    if not os.path.isfile(archive):
        raise SystemExit("sparkbox: the driver JVM wrote no class archive at " + archive)


def write_launch(path):
    """Build time: records the java command line spark-submit's launcher
    makes for a PySpark driver (without its class path and heap size, which
    `command` sets) in `path`."""
    env = dict(os.environ, SPARK_PRINT_LAUNCH_COMMAND="1")
    out = subprocess.run(
        [os.path.join(os.environ["SPARK_HOME"], "bin", "spark-class"), "org.apache.spark.deploy.SparkSubmit", "--version"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True,
    ).stderr
    line = next(l for l in out.splitlines() if l.startswith("Spark Command: "))
    words = shlex.split(line[len("Spark Command: "):])
    tail = words.index("org.apache.spark.deploy.SparkSubmit")
    java, options = words[0], []
    classpath = []
    i = 1
    while i < tail:
        word = words[i]
        if word in ("-cp", "-classpath"):
            classpath = words[i + 1].split(":")
            i += 2
            continue
        if not word.startswith("-Xmx"):
            options.append(word)
        i += 1
    jars = []
    for entry in classpath:
        if os.path.normpath(entry) == os.path.normpath(conf_dir()):
            continue  # appended last by `command`
        if entry.endswith("/*"):
            folder = entry[:-2]
            listed = sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".jar"))
            jars += [j for j in listed if j not in jars]
        elif entry not in jars:
            jars.append(entry)
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"java": java, "classpath": jars, "options": options}, f, indent=1)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--dump":
        dump(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "--write-launch":
        write_launch(sys.argv[2])
    else:
        raise SystemExit("usage: python -m sbx_driver --write-launch FILE | --dump ARCHIVE")
