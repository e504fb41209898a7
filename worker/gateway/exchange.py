"""One model request from arrival to its record: the tokens it cost, its transcript line and its log line.

An exchange ends exactly once, however it ends: an answer, an upstream error, a refusal, or a stream the
agent stopped reading (which the relay and the response that carries it may both notice). ``finish`` is
therefore idempotent, and synchronous, so that it still runs where a cancelled task can no longer await.

A refused request leaves a short note, not its body: copying megabytes the gateway declined to use into the
transcript would make refusals the expensive path.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from worker.gateway.dialect import Dialect, Tokens
from worker.gateway.runs import Run


class Exchange:
    """``Exchange(run, dialect, route, log)``; ``body`` once the request has one; ``finish(...)`` once."""

    def __init__(self, run: Run, dialect: Dialect, route: str, log: Any) -> None:
        self.run = run
        self.dialect = dialect
        self.route = route
        self.log = log
        self.body: dict[str, Any] | None = None
        self.size = 0  # bytes of the body as received
        self.dropped: list[str] = []
        self.started = time.monotonic()
        self.at = datetime.now(UTC).isoformat()
        self.finished = False

    def finish(self, status: int, answer: object = None, used: Tokens | None = None, *, stream: bool = False,
               refused: str | None = None, error: str | None = None) -> None:
        if self.finished:
            return
        self.finished = True
        run = self.run
        if used is not None:
            run.grant.meter.add(used)
        ms = round((time.monotonic() - self.started) * 1000, 1)
        usage = None if used is None else {"input": used.input, "output": used.output, "estimated": used.estimated}
        request = None if self.body is None else self.dialect.prompt(self.body)
        record: dict[str, object] = {
            "time": self.at, "route": self.route, "protocol": self.dialect.name, "status": status, "ms": ms,
            "stream": stream, "request": request, "response": answer, "usage": usage}
        extra: dict[str, Any] = {k: v for k, v in (("refused", refused), ("error", error)) if v is not None}
        if self.dropped:
            extra["dropped"] = self.dropped
        run.transcript.write({**record, **extra})
        self.log.info("model request", run=run.grant.run_id, route=self.route, status=status, ms=ms,
                      input_tokens=used.input if used else 0, output_tokens=used.output if used else 0,
                      estimated=bool(used and used.estimated), **extra)
