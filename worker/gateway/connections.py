"""Connections to the gateway's socket: a bounded number, and none left sitting without a whole request.

Every sandbox of the worker can connect to the gateway's socket, and every connection costs the worker a
file descriptor (a systemd service gets 1024 by default, shared with Redis, GitHub and git). uvicorn 0.55
bounds neither their number nor their idleness the way the gateway needs:

- ``limit_concurrency`` does not refuse connections; it answers *requests* with 503 once that many
  connections are open. A sandbox holding that many idle connections would lock every other run out.
- ``timeout_keep_alive`` is armed only after a response, and cancelled by any byte received: a connection
  that never sends a request, or sends half a request line, stays open for good. Nor does it limit the size
  of a request's headers (httptools buffers them whole).

``GuardedHttp`` (uvicorn's httptools protocol, plus three rules) closes those gaps:

- a request's headers must be complete within ``headers_seconds`` of the connection opening (or of the
  previous response), and be at most ``MAX_HEAD`` bytes; otherwise the connection is closed;
- at most ``max_connections`` are held. A new one beyond that closes the *oldest idle* connection (no
  request in progress: none yet, or between requests) to make room. Idle connections are what an attack
  piles up and the cheapest to lose (a client opens a new one), so a real request arriving while a sandbox
  hoards connections is served, not refused. Only when every held connection has a request in progress is
  there nothing to close; then the newcomer is kept and its request gets uvicorn's 503 (the gateway sets
  ``limit_concurrency`` to ``max_connections + 1``), which clients retry.

Requests in progress are bounded elsewhere (one in flight and a few waiting per run, ``turns``), so one run
cannot fill ``max_connections`` with busy connections; 64 leaves room for a worker's few runs at once. The
body of a request has its own deadline in the app (``body``), since uvicorn has none.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_CONNECTIONS = 64  # a few runs x (1 in flight + 8 waiting) fit with room to spare; fds stay well under 1024
HEADERS_SECONDS = 10.0  # a client sends its request line and headers at once; this is generous
KEEP_ALIVE_SECONDS = 5  # an idle connection between requests: long enough for an agent's next step to reuse it
MAX_HEAD = 64 * 1024  # request line and headers; an agent's are well under 4 KiB


class GuardedHttp(HttpToolsProtocol):
    """Set the limits with ``guarded(max_connections, headers_seconds)``, which returns a subclass."""

    max_connections = MAX_CONNECTIONS
    headers_seconds = HEADERS_SECONDS

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._opened = self.loop.time()
        self._head_bytes = 0
        self._in_head = False
        self._deadline: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._await_request()
        if len(self.connections) > self.max_connections:
            self._make_room()

    def idle(self) -> bool:
        """No request in progress: none received yet, or the last one answered."""
        return self.cycle is None or self.cycle.response_complete

    def _make_room(self) -> None:
        """Close the oldest idle connection if the open ones (not those already closing) are over the limit."""
        held = [c for c in self.connections if isinstance(c, GuardedHttp) and not c.transport.is_closing()]
        if len(held) <= self.max_connections:
            return
        idle = [c for c in held if c is not self and c.idle()]
        if idle:
            min(idle, key=lambda c: c._opened).transport.close()

    def _await_request(self) -> None:
        self._cancel_deadline()
        self._deadline = self.loop.call_later(self.headers_seconds, self._late)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _late(self) -> None:
        self._deadline = None
        if (self._in_head or self.idle()) and not self.transport.is_closing():
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_head:
            self._head_bytes += len(data)  # the whole chunk: a little early, never late
            if self._head_bytes > MAX_HEAD and not self.transport.is_closing():
                self.send_400_response("Request headers too large.")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes = True, 0

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_deadline()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._await_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)


def guarded(max_connections: int = MAX_CONNECTIONS, headers_seconds: float = HEADERS_SECONDS) -> type[GuardedHttp]:
    """The protocol class for one gateway's uvicorn ``Config(http=...)``."""
    return type("GuardedHttp", (GuardedHttp,), {"max_connections": max_connections,
                                                "headers_seconds": headers_seconds})
