"""One model request at a time per run, the rest waiting their turn in order.

A run's token budget is checked before a request goes upstream, but what an answer costs is known only when
it ends. With requests in flight side by side, every one of them passes the check against the same count,
and an agent that sends forty at once spends forty answers against a budget of one. Serving a run's requests
one after another makes the check true again: a request starts only once the previous answer is counted, so
a run overshoots its token budget by at most the one answer that crossed it (and the gateway also caps the
length of each answer at what the budget has left).

Later requests wait rather than fail, because agents do send a few at once (a title, a sub-agent) and would
only retry a refusal. Waiting is bounded: a run holds at most ``MAX_WAITING`` requests behind the one in
flight, so it cannot park connections and memory in the gateway without end; one more is refused at once.
A waiting request holds little: uvicorn stops reading its body after 64 KiB until the app asks for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

MAX_WAITING = 8  # requests queued behind the one in flight, per run; more than an agent sends side by side


class TurnsFull(Exception):
    """The run already has its one request in flight and ``MAX_WAITING`` more queued."""


class Turns:
    """FIFO turns for one run: ``release = await turns.take()``; call ``release()`` when the answer is done."""

    def __init__(self, max_waiting: int = MAX_WAITING) -> None:
        self.max_waiting = max_waiting
        self._lock = asyncio.Lock()  # wakes its waiters in the order they came
        self._holding = 0  # the request in flight (if any) and those waiting for it

    @property
    def full(self) -> bool:
        return self._holding > self.max_waiting

    async def take(self) -> Callable[[], None]:
        if self.full:
            raise TurnsFull
        self._holding += 1
        try:
            await self._lock.acquire()
        except BaseException:
            self._holding -= 1
            raise
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._holding -= 1
                self._lock.release()

        return release


class HeldResponse(Response):
    """``response`` sent as it is, and the run's turn given back once it is: a streamed answer keeps the turn
    until its last event (or until the agent stops reading), however the ASGI call ends."""

    def __init__(self, response: Response, release: Callable[[], None]) -> None:
        self.response = response
        self.release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.response(scope, receive, send)
        finally:
            self.release()
