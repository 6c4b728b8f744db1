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
    if os.path.isfile(ARCHIVE) and not any(o.startswith("-XX:DumpLoadedClassList") for o in extra_options):
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


def _first_notebook(extra_options):
    """Runs a local session through a representative first notebook (a
    session, a query, a shuffle, Parquet, CSV, a Python function) in a driver
    JVM started with `extra_options`, and waits for that JVM to end."""
    from pyspark.sql import SparkSession

    proc = start_gateway(extra_options, with_conf_dir=False)
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
    # Its stdin closing ends the JVM.
    proc.stdin.close()
    proc.wait(timeout=300)


def _hot_jars_first(classpath, classlist):
    """`classpath` (jars, each spelled as its real path) with the jars the
    classes in `classlist` came from first, most classes first; where two
    jars hold a class of the same name, the one that came first still does,
    so every class resolves from the jar it did before. While it dumps, the
    JVM finds each class's jar by comparing it with the class path's entries
    in turn, two stat calls an entry: on some storage (fuse-overlayfs) each
    is a round trip, and with Spark's own jars at the end of the alphabet
    the dump took 189 s here in alphabetical order, 26 s in this one. The
    order is checked: a class of two jars that would now resolve from the
    other fails the build."""
    import heapq
    import zipfile
    from collections import defaultdict

    classpath = [os.path.realpath(j) for j in classpath]
    owners = defaultdict(list)
    for jar in classpath:
        try:
            with zipfile.ZipFile(jar) as z:
                names = z.namelist()
        except (OSError, zipfile.BadZipFile):
            continue
        for name in names:
            if name.endswith(".class"):
                owners[name].append(jar)
    count = defaultdict(int)
    with open(classlist, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line[:1] in ("#", "@") or not line.strip():
                continue
            found = owners.get(line.split()[0] + ".class")
            if found:
                count[found[0]] += 1
    # The jar a class came from stays before every other jar holding it.
    after = defaultdict(set)
    waiting = defaultdict(int)
    for found in owners.values():
        for other in found[1:]:
            if other not in after[found[0]]:
                after[found[0]].add(other)
                waiting[other] += 1
    index = {jar: i for i, jar in enumerate(classpath)}
    ready = [(-count[j], index[j], j) for j in classpath if waiting[j] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, _, jar = heapq.heappop(ready)
        order.append(jar)
        for other in after[jar]:
            waiting[other] -= 1
            if waiting[other] == 0:
                heapq.heappush(ready, (-count[other], index[other], other))
    if len(order) != len(classpath):
        return classpath  # a jar listed twice: keep the order as it was
    position = {jar: i for i, jar in enumerate(order)}
    for found in owners.values():
        if len(found) > 1 and min(found, key=position.get) != found[0]:
            raise SystemExit("sparkbox: reordering the class path would load %s from another jar" % found[0])
    return order


def dump(archive):
    """Build time: writes the class data sharing archive `archive` of the
    classes a first notebook's driver loads. Two steps, as JDK 17 makes a
    static archive: the list of the classes a run through `_first_notebook`
    loads (that run at its usual speed), then `java -Xshare:dump` over that
    list and the driver's class path. (A dynamic archive,
    -XX:ArchiveClassesAtExit, was ten times slower to make here: the whole
    run went at that pace.)"""
    with open(LAUNCH, encoding="utf-8") as f:
        launch = json.load(f)
    work = tempfile.mkdtemp(prefix="sparkbox-classes-")
    try:
        classlist = os.path.join(work, "classes.lst")
        began = time.monotonic()
        _first_notebook(["-XX:DumpLoadedClassList=" + classlist])
        print("sparkbox: the class list of a first notebook in %.1f s" % (time.monotonic() - began), flush=True)
        if not os.path.isfile(classlist):
            raise SystemExit("sparkbox: the driver JVM wrote no class list at " + classlist)
        launch["classpath"] = _hot_jars_first(launch["classpath"], classlist)
        with open(LAUNCH, "w", encoding="utf-8") as f:
            json.dump(launch, f, indent=1)
        cmd = [launch["java"]] + launch["options"] + [
            "-Xshare:dump",
            "-XX:SharedClassListFile=" + classlist,
            "-XX:SharedArchiveFile=" + archive,
            "-Xlog:cds=off",
            "-Xlog:cds+heap=off",
            "-cp",
            ":".join(launch["classpath"]),
        ]
        log = os.path.join(work, "dump.log")
        began = time.monotonic()
        with open(log, "w", encoding="utf-8") as out:
            done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT)
        print("sparkbox: the class archive in %.1f s" % (time.monotonic() - began), flush=True)
        if done.returncode != 0 or not os.path.isfile(archive):
            with open(log, encoding="utf-8", errors="replace") as out:
                sys.stdout.write("".join(out.readlines()[-40:]))
            raise SystemExit("sparkbox: java -Xshare:dump failed (exit %d), no archive at %s" % (done.returncode, archive))
    finally:
        shutil.rmtree(work, ignore_errors=True)


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
