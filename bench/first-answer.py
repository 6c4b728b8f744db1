# Runs inside a cluster's Jupyter container (bench/first-answer feeds it on
# stdin): one round of the first-answer benchmark, printed as one JSON line.
#   a) today's way: a fresh `python` doing SparkSession.builder.getOrCreate()
#      and the cell, timed from the process start to the answer;
#   b) a fresh notebook kernel through Jupyter's REST API, its cells sent
#      over the kernel's websocket as JupyterLab does, timed from the
#      kernel-start request to the first cell's reply; then the same cell
#      again (the second cell).
#   c) the same as b with a kernel the server kept no spare of (started
#      cold: its driver starts with the kernel), to show what the spare buys.
# argv: ORDER (e.g. "abc", "cba") and IDLE_WAIT (seconds to wait after the cells
# before measuring what the idle notebook holds; 0: not measured).
# The Jupyter client (api, run_cells, CELL, OPENER) is tests/common/kernel.py,
# which bench/first-answer sends first.
import json
import os
import subprocess
import sys
import time

EXPECTED = "499999500000"


def python_way():
    code = (
        "from pyspark.sql import SparkSession\n"
        "spark = SparkSession.builder.appName('bench: python').getOrCreate()\n"
        "print('ANSWER', %s, flush=True)\n"
        "spark.stop()\n" % CELL
    )
    t0 = time.monotonic()
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    answer = None
    for line in p.stdout:
        if line.startswith("ANSWER "):
            answer = line.split()[1]
            t = time.monotonic() - t0
            break
    p.wait()
    if answer != EXPECTED:
        raise SystemExit("python way answered %r, not %s" % (answer, EXPECTED))
    return t


def memory_bytes():
    for path in ("/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory/memory.usage_in_bytes"):
        try:
            with open(path) as f:
                return int(f.read())
        except OSError:
            pass
    return 0


def active_apps():
    """The master's running applications (its /json/ page)."""
    url = os.environ.get("SPARKBOX_MASTER_URL", "spark://master:7077")
    host = url[len("spark://"):].split(",")[0].rsplit(":", 1)[0]
    port = os.environ.get("SPARKBOX_MASTER_UI_PORT", "8080")
    d = json.load(OPENER.open("http://%s:%s/json/" % (host, port), timeout=10))
    return d.get("activeapps", [])


def master_cores(app_prefix):
    """Cores the master has granted to applications named app_prefix*."""
    return sum(a.get("cores", 0) for a in active_apps() if a.get("name", "").startswith(app_prefix))


def wait_for_spare(timeout=120):
    """Until the Jupyter server's spare kernel (if it keeps one) has its
    driver registered at the master, as it has when a user opens a notebook
    a few seconds after the last one; the seconds waited."""
    if os.environ.get("SPARKBOX_SPARE_KERNELS", "1") == "0":
        return 0.0
    prefix = os.environ.get("SPARKBOX_CLUSTER", "sparkbox") + ": kernel"
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if any(a.get("name", "").startswith(prefix) for a in active_apps()):
                return time.monotonic() - t0
        except OSError:
            pass
        time.sleep(0.2)
    return time.monotonic() - t0


def cold_kernelspec():
    """A copy of the python3 kernelspec under another name: the Jupyter
    server keeps no spare of it, so its kernels start cold (c)."""
    import shutil
    src = os.path.expanduser("~/.sparkbox/jupyter/kernels/python3")
    dst = os.path.expanduser("~/.local/share/jupyter/kernels/sparkbox-bench-cold")
    if not os.path.isdir(dst):
        shutil.copytree(src, dst)
    return "sparkbox-bench-cold"


def kernel_way(idle_wait, cold=False):
    waited = 0.0 if cold else wait_for_spare()
    name = cold_kernelspec() if cold else "python3"
    mem0 = memory_bytes()
    t0 = time.monotonic()
    kernel = api("POST", "/api/kernels", {"name": name})
    try:
        results = ioloop.IOLoop.current().run_sync(
            lambda: run_cells(kernel["id"], [CELL, CELL]), timeout=600
        )
        times = [r[0] for r in results]
        answers = [r[1] for r in results]
        if answers != [EXPECTED, EXPECTED]:
            raise SystemExit("the kernel answered %r, not %s" % (answers, EXPECTED))
        if cold:
            return {"cold_first": times[0] - t0}
        out = {"kernel_first": times[0] - t0, "kernel_second": times[1] - times[0], "spare_wait": waited}
        if idle_wait > 0:
            time.sleep(idle_wait)
            out["idle_memory_mb"] = (memory_bytes() - mem0) / 2**20
            out["idle_cores"] = master_cores(os.environ.get("SPARKBOX_CLUSTER", "sparkbox") + ": kernel")
        return out
    finally:
        api("DELETE", "/api/kernels/" + kernel["id"])


def main():
    order = sys.argv[1] if len(sys.argv) > 1 else "ab"
    idle_wait = float(sys.argv[2]) if len(sys.argv) > 2 else 0
    out = {}
    for way in order:
        if way == "a":
            out["python"] = python_way()
        elif way == "c":
            out.update(kernel_way(0, cold=True))
        else:
            out.update(kernel_way(idle_wait))
        time.sleep(3)  # the finished application's executors go away
    print(json.dumps(out))


main()
