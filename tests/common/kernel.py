# Test helper, run inside a cluster's Jupyter container: drives Jupyter's
# REST API and a kernel's websocket as JupyterLab does.
#   kernel.py open PATH   -> opens a notebook session at PATH (POST
#       /api/sessions), runs the first-answer cell and a cell that reports
#       facts about the kernel; prints one JSON line.
#   kernel.py close SESSION_ID
# bench/first-answer.py uses its api() and run_cells().
import json
import os
import sys
import time
import urllib.request
import uuid

from tornado import ioloop, websocket

TOKEN = os.environ.get("SPARKBOX_JUPYTER_TOKEN", "")
BASE = "http://127.0.0.1:8888"
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
CELL = 'spark.range(1000000).selectExpr("sum(id)").first()[0]'
FACTS = """
import json as _j, os as _o
_c = spark.sparkContext
print(_j.dumps({
    "cwd": _o.getcwd(),
    "session_name": _o.environ.get("JPY_SESSION_NAME"),
    "app_id": _c.applicationId,
    "app_name": _c.appName,
    "dynamic_allocation": spark.conf.get("spark.dynamicAllocation.enabled"),
    "driver_maps_archive": "/opt/sparkbox/driver.jsa" in open("/proc/%d/maps" % _c._gateway.proc.pid).read(),
}))
"""


def api(method, path, body=None):
    req = urllib.request.Request(
        BASE + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": "token " + TOKEN, "Content-Type": "application/json"},
    )
    with OPENER.open(req, timeout=300) as r:
        raw = r.read()
    return json.loads(raw) if raw else None


async def run_cells(kernel_id, cells):
    ws = await websocket.websocket_connect(
        BASE.replace("http", "ws") + "/api/kernels/%s/channels?token=%s" % (kernel_id, TOKEN)
    )
    session = uuid.uuid4().hex
    results = []
    for code in cells:
        msg_id = uuid.uuid4().hex
        ws.write_message(json.dumps({
            "header": {"msg_id": msg_id, "username": "test", "session": session,
                       "msg_type": "execute_request", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": True,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
        }))
        value, stdout, replied, idle = None, "", False, False
        while True:
            raw = await ws.read_message()
            if raw is None:
                raise SystemExit("the kernel's websocket closed")
            m = json.loads(raw)
            if m.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = m["header"]["msg_type"]
            if kind == "execute_result":
                value = m["content"]["data"].get("text/plain")
            elif kind == "stream" and m["content"].get("name") == "stdout":
                stdout += m["content"]["text"]
            elif kind == "error":
                raise SystemExit("the cell failed: %s" % "\n".join(m["content"].get("traceback", [])))
            elif kind == "execute_reply":
                replied = True
            elif kind == "status" and m["content"].get("execution_state") == "idle":
                idle = True
            # The reply (shell channel) and the outputs (iopub) arrive in
            # either order: the cell is done when both are in.
            if replied and idle:
                results.append((time.monotonic(), value, stdout))
                break
    ws.close()
    return results


def open_notebook(path):
    listed_before = [k["id"] for k in api("GET", "/api/kernels")]
    t0 = time.monotonic()
    s = api("POST", "/api/sessions", {"path": path, "name": os.path.basename(path), "type": "notebook",
                                       "kernel": {"name": "python3"}})
    kernel_id = s["kernel"]["id"]
    results = ioloop.IOLoop.current().run_sync(lambda: run_cells(kernel_id, [CELL, FACTS]), timeout=600)
    listed_after = [k["id"] for k in api("GET", "/api/kernels")]
    print(json.dumps({
        "session_id": s["id"],
        "kernel_id": kernel_id,
        "listed_before": listed_before,
        "listed_after": listed_after,
        "answer": results[0][1],
        "first_seconds": results[0][0] - t0,
        "facts": json.loads(results[1][2].strip().splitlines()[-1]),
    }))


# bench/first-answer runs this file before its own, for the functions above.
if sys.argv[1:2] == ["open"]:
    open_notebook(sys.argv[2])
elif sys.argv[1:2] == ["close"]:
    api("DELETE", "/api/sessions/" + sys.argv[2])
