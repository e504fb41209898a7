"""The parts of one Mull process (web server, worker) run together, stop together, and die together.

SIGINT and SIGTERM are Mull's, not arq's or uvicorn's: the first asks every part to stop cleanly, a second one
stops them at once. A part that ends while nobody asked it to (it crashed, or could not start) takes the others
down with it and the process exits non-zero with one line saying which part and why: ``mull serve`` never runs
half alive, a receiver storing deliveries that no worker will ever take.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.redaction import Redactor

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class PartFailed(Exception):
    """A part of the process ended on its own; the message is the one line to show."""


@dataclass(frozen=True)
class Part:
    """``run`` returns when the part has stopped; ``stop(signal, force)`` asks it to (it must not block)."""

    name: str
    run: Callable[[], Awaitable[None]]
    stop: Callable[[int, bool], None]


async def supervise(parts: Sequence[Part], log: Any, redactor: Redactor) -> None:
    """Run ``parts`` until a signal stops them all (return) or one ends on its own (PartFailed)."""
    loop = asyncio.get_running_loop()
    tasks = {asyncio.create_task(_run(part), name=part.name): part for part in parts}
    received: list[int] = []

    def on_signal(sig: int) -> None:
        force = bool(received)
        received.append(sig)
        log.info("stopping at once" if force else "stopping", signal=signal.Signals(sig).name)
        for task, part in tasks.items():
            if not task.done():
                part.stop(sig, force)
        if force:  # a second Ctrl-C: whatever is still running is cancelled
            for task in tasks:
                task.cancel()

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        ended = next(iter(done))
        failure = None if received else _why_it_ended(ended, len(tasks) > 1, redactor)
        if failure:
            error = None if ended.cancelled() else ended.exception()
            log.error("stopping: a part of Mull ended", reason=failure,
                      exc_info=error if error is not None and not isinstance(error, PartFailed) else None)
            failure += "; Mull stopped its other parts too" if len(tasks) > 1 else ""
            for task, part in tasks.items():
                if not task.done():
                    part.stop(signal.SIGTERM, False)
        await asyncio.wait(tasks)
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
    for task in tasks:  # retrieved, so that asyncio does not report them as never retrieved
        if not task.cancelled():
            task.exception()
    if failure:
        raise PartFailed(failure)


async def _run(part: Part) -> None:
    try:
        await part.run()
    except SystemExit as exc:  # uvicorn exits when its startup fails: that ends the part, not the process
        raise PartFailed(f"could not start (exit status {exc.code}; see the log above)") from None


def _why_it_ended(task: asyncio.Task[None], others: bool, redactor: Redactor) -> str | None:
    """One line on a part that ended by itself, or None when that is its normal end (a lone part returning)."""
    name = task.get_name()
    if task.cancelled():
        return f"the {name} was cancelled"
    error = task.exception()
    if error is None:
        return f"the {name} stopped on its own" if others else None
    detail = redactor.text(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)
    if isinstance(error, PartFailed):
        return f"the {name} {detail}"
    return f"the {name} stopped: {type(error).__name__}: {detail}"
