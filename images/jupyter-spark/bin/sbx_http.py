"""A minimal HTTP GET to a port on this container, for the health and
readiness checks (healthcheck, probe).

urllib.request imports ssl, email and http.client: about 60 ms of CPU at
every check, and sparkbox runs checks in every container while the daemons
in them start. This needs only the socket module. HTTP/1.0, so the reply is
never chunked and ends when the server closes the connection.
"""
import socket


def get(port, path, headers=None, timeout=3.0, host="127.0.0.1"):
    """(status, body bytes) of GET http://host:port/path.

    Raises OSError when nothing answers and ValueError when the reply is
    not HTTP."""
    lines = ["GET %s HTTP/1.0" % path, "Host: %s:%s" % (host, port)]
    for key, value in (headers or {}).items():
        lines.append("%s: %s" % (key, value))
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    chunks = []
    with socket.create_connection((host, int(port)), timeout=timeout) as conn:
        conn.sendall(request)
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split()
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError("not an HTTP reply: %r" % status_line[:80])
    return int(parts[1]), body
