"""``ModelGateway``: the one way out of the sandbox, served on a unix socket inside the worker's event loop.

The worker holds the model API key; an agent must not. So each run gets a token instead, and the agent's
model requests come here: the gateway checks the token and the run's budgets, forwards to the configured
endpoint with the real key, counts usage, scrubs secrets from the answer and keeps a transcript.

Three details of serving are deliberate:

- uvicorn's ``Server.serve()`` installs SIGINT/SIGTERM handlers for as long as it runs (and re-raises the
  signal when it returns), which would take graceful shutdown away from the arq worker that hosts the
  gateway. The gateway calls ``startup()`` and ``shutdown()`` only: they bind and close, and touch no signal.
- uvicorn chmods a unix socket it creates to 0666. The gateway binds the socket itself, 0600 inside a
  0700 directory, so only Mull's own user can connect; the sandbox reaches it through a bind mount.
- every sandbox shares the socket, so connections are bounded in number, time and header size
  (``connections``): one sandbox hoarding idle connections neither runs the worker out of file descriptors
  nor keeps another run's requests out.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import uvicorn

from bot import logs
from bot.tls_context import client_context
from worker.gateway.app import build_app
from worker.gateway.body import BODY_SECONDS, MAX_BODY
from worker.gateway.client import gateway_client
from worker.gateway.connections import HEADERS_SECONDS, KEEP_ALIVE_SECONDS, MAX_CONNECTIONS, guarded
from worker.gateway.forward import Forwarder, Upstream
from worker.gateway.runs import RunGrant, Runs, RunUsage
from worker.gateway.scrub import Scrubber
from worker.gateway.transcript import private_dir

MAX_SOCKET_PATH = 107  # bytes: sun_path holds 108 with the terminating NUL


class ModelGateway:
    """``async with ModelGateway(...) as gateway:`` then ``async with gateway.run(id, model, steps, tokens)``."""

    def __init__(self, upstream_base_url: str, upstream_api_key: str | None, socket_path: Path,
                 transcripts_dir: Path, redact: Sequence[str] = (), http: httpx.AsyncClient | None = None, *,
                 max_body: int = MAX_BODY, upstream_timeout: float = 300.0, shutdown_seconds: int = 5,
                 max_connections: int = MAX_CONNECTIONS, headers_seconds: float = HEADERS_SECONDS,
                 body_seconds: float = BODY_SECONDS, log: Any = None) -> None:
        self.socket_path = socket_path
        self.transcripts_dir = transcripts_dir
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(upstream_timeout, connect=10.0),
                                                  verify=client_context())
        self._runs = Runs(transcripts_dir, Scrubber((upstream_api_key, *redact)))
        upstream = Upstream(upstream_base_url.rstrip("/"), upstream_api_key, self._http)
        self._app = build_app(self._runs, Forwarder(upstream, log or logs.get("mull.gateway")), max_body,
                              body_seconds)
        self._shutdown_seconds = shutdown_seconds
        self._max_connections = max_connections
        self._headers_seconds = headers_seconds
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the model gateway is already started: stop() it before starting it again")
        private_dir(self.transcripts_dir)
        sock = self._bind()
        config = uvicorn.Config(self._app, lifespan="off", log_config=None, access_log=False,
                                proxy_headers=False, server_header=False, date_header=False, ws="none",
                                interface="asgi3", timeout_graceful_shutdown=self._shutdown_seconds,
                                http=guarded(self._max_connections, self._headers_seconds),
                                limit_concurrency=self._max_connections + 1,  # 503 only when none can be closed
                                backlog=self._max_connections,  # connections accepted at once, before any closes
                                timeout_keep_alive=KEEP_ALIVE_SECONDS)
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)  # what serve() sets before startup(); "off" does nothing
        try:
            await server.startup(sockets=[sock])
        except BaseException:
            sock.close()
            self.socket_path.unlink(missing_ok=True)
            raise
        self._server, self._socket = server, sock

    def _bind(self) -> socket.socket:
        path = self.socket_path
        if len(os.fsencode(path)) > MAX_SOCKET_PATH:
            raise ValueError(f"the gateway socket path {path} is {len(os.fsencode(path))} bytes; unix sockets allow "
                             f"{MAX_SOCKET_PATH}: use a shorter MULL_DATA_DIR")
        private_dir(path.parent)
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISSOCK(path.lstat().st_mode):
                raise FileExistsError(f"{path} exists and is not a socket: the gateway will not replace it; "
                                      "point the gateway at a path of its own")
            path.unlink()  # left by a worker that did not stop cleanly
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(os.fspath(path))
            os.chmod(path, 0o600)  # before listen(): nobody can connect yet, and the directory is 0700
        except BaseException:
            sock.close()
            raise
        return sock

    async def stop(self) -> None:
        """Close the socket (waiting up to ``shutdown_seconds`` for answers in flight) and end every run."""
        server, sock = self._server, self._socket
        self._server = self._socket = None
        try:
            if server is not None and sock is not None:
                await server.shutdown(sockets=[sock])
        finally:
            self.socket_path.unlink(missing_ok=True)
            self._runs.close_all()
            if self._own_http:
                await self._http.aclose()

    async def __aenter__(self) -> ModelGateway:
        await self.start()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    def open_run(self, run_id: str, model: str, steps: int, tokens: int) -> RunGrant:
        """A fresh token for ``run_id``, valid until ``close_run``; ``steps`` and ``tokens`` are its budgets."""
        private_dir(self.transcripts_dir)
        return self._runs.open(run_id, model, steps, tokens)

    def close_run(self, run_id: str) -> RunUsage:
        """End the run: its token stops working at once; returns its final usage."""
        return self._runs.close(run_id)

    @contextlib.asynccontextmanager
    async def run(self, run_id: str, model: str, steps: int, tokens: int) -> AsyncIterator[RunGrant]:
        grant = self.open_run(run_id, model, steps, tokens)
        try:
            yield grant
        finally:
            self.close_run(run_id)

    def client(self, grant: RunGrant, timeout: float = 300.0) -> httpx.AsyncClient:
        """An in-process client for ``grant``'s run, over the unix socket (base URL ends in ``/v1``)."""
        return gateway_client(self.socket_path, grant.token, timeout)
