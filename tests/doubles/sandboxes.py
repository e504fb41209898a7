"""Where tests run agent commands: under bubblewrap when this machine can, and unconfined everywhere.

Also a stand-in for the model gateway: a tiny HTTP server on a unix socket, as the gateway listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socketserver
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from worker.agent.bwrap import mull_python
from worker.agent.sandbox import CommandResult, SandboxSpec, SandboxUnavailable, check_bwrap, run_argv


def bwrap_works() -> bool:
    try:
        check_bwrap()
    except SandboxUnavailable:
        return False
    return True


needs_bwrap = pytest.mark.skipif(not bwrap_works(), reason="bwrap unavailable here")
SPECS = [pytest.param(SandboxSpec(enabled=True), marks=needs_bwrap, id="bwrap"),
         pytest.param(SandboxSpec(enabled=False), id="unconfined")]


def run_python(code: str, cwd: Path, spec: SandboxSpec, *args: str, timeout: float = 20) -> CommandResult:
    """``code`` on Mull's own interpreter, which the sandbox sees only when bound in (as for the bridge)."""
    python, binds = mull_python()
    spec = dataclasses.replace(spec, ro_paths=(*spec.ro_paths, *binds))
    return asyncio.run(run_argv([python, "-I", "-c", code, *args], cwd, spec, timeout))


def running(marker: str) -> list[int]:
    """Live processes whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
                status = (entry / "status").read_text()
            except OSError:
                continue
            if marker.encode() in cmdline and "State:\tZ" not in status:
                found.append(int(entry.name))
    return found


class _Answer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = f"gateway answered {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        pass  # a unix socket has no client address to log


@contextlib.contextmanager
def gateway_socket() -> Iterator[Path]:
    """A unix socket answering ``GET /path`` with ``gateway answered /path``, for as long as the block runs."""
    with tempfile.TemporaryDirectory(prefix="mull-gw-") as folder:  # short: socket paths max out at 107 bytes
        path = Path(folder) / "gateway.sock"
        server = socketserver.ThreadingUnixStreamServer(str(path), _Answer)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        try:
            yield path
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)
