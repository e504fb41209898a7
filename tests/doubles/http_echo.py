"""A plain HTTP server on the host's loopback that says what it received: the far side of the egress proxy."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        headers = "".join(f"{name}: {value}\n" for name, value in self.headers.items())
        body = f"echo {self.path}\n{headers}".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        pass


@contextlib.contextmanager
def echo_server(host: str = "127.0.0.1") -> Iterator[int]:
    """The port of a server answering ``GET /path`` with ``echo /path`` and the request's headers."""
    server = ThreadingHTTPServer((host, 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
