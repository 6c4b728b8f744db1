"""A minimal HTTP GET to a port on this container, for the health and
readiness checks (healthcheck, probe).

urllib.request imports ssl, email and http.client: about 60 ms of CPU at
every check, and sparkbox runs checks in every container while the daemons
in them start. This needs only the socket and time modules. HTTP/1.0 with
"Connection: close", so the reply is never chunked; it ends at its
Content-Length or when the server closes the connection, whichever is first.
"""
import socket
import time


def get(port, path, headers=None, timeout=3.0, host="127.0.0.1"):
    """(status, body bytes) of GET http://host:port/path, all within
    `timeout` seconds.

    Raises OSError when nothing answers in time and ValueError when the
    reply is not HTTP."""
    deadline = time.monotonic() + timeout
    lines = ["GET %s HTTP/1.0" % path, "Host: %s:%s" % (host, port), "Connection: close"]
    for key, value in (headers or {}).items():
        lines.append("%s: %s" % (key, value))
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    data = b""
    head = None
    length = None
    with socket.create_connection((host, int(port)), timeout=timeout) as conn:
        conn.sendall(request)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no complete reply within %s s" % timeout)
            conn.settimeout(left)
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
            if head is None and b"\r\n\r\n" in data:
                head, _, _ = data.partition(b"\r\n\r\n")
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length" and value.strip().isdigit():
                        length = int(value.strip())
            if length is not None and len(data) - len(head) - 4 >= length:
                break
    head, _, body = data.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split()
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError("not an HTTP reply: %r" % status_line[:80])
    if length is not None:
        body = body[:length]
    return int(parts[1]), body
