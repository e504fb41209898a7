"""``ByteStream``: an upstream that sends exactly the bytes it is given, in the chunks it is given.

For what a relay does with a stream's framing: chunks cut mid-line or mid-event, ``\\r\\n`` endings,
comments. Chunk ``i`` (after the first) is sent only once ``release(i)`` is called, so a test can prove a
chunk reached the client while the upstream had not finished, without sleeping. It answers any POST.
"""

from __future__ import annotations

import asyncio
import threading

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from .server import BackgroundServer

HOLD_SECONDS = 10.0  # a chunk never released is given up after this, so a failing test ends


class ByteStream:
    def __init__(self, chunks: list[bytes], held: bool = False) -> None:
        """``held``: wait for ``release(i)`` before chunk ``i`` (i ≥ 1); otherwise send everything at once."""
        self.chunks = chunks
        self._gates = [threading.Event() for _ in chunks]
        self._gates[0].set()
        if not held:
            for gate in self._gates:
                gate.set()
        self.finished = threading.Event()
        app = Starlette(routes=[Route("/{path:path}", self._answer, methods=["POST"])])
        self._server = BackgroundServer(app)
        self.url = f"{self._server.url}/v1"

    def __enter__(self) -> ByteStream:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for gate in self._gates:
            gate.set()
        self._server.stop()

    def release(self, index: int) -> None:
        self._gates[index].set()

    async def _answer(self, request: Request) -> StreamingResponse:
        await request.body()

        async def play():
            for gate, chunk in zip(self._gates, self.chunks, strict=True):
                if not gate.is_set():
                    await asyncio.to_thread(gate.wait, HOLD_SECONDS)
                yield chunk
            self.finished.set()

        return StreamingResponse(play(), media_type="text/event-stream")
