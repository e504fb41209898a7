"""An arq Worker that outlives a Redis outage instead of exiting on it.

arq lets any Redis error out of its poll loop, which ends ``mull worker``: its running agent runs die with it,
and once its heartbeat lapses another worker runs them again from the start. Mull's Redis clients already
retry connection errors for a while (``WORKER_KEEP_TRYING_S``, which covers a Sentinel failover); when an
outage lasts longer, a poll fails, this worker logs it once, waits a poll and tries again, and the jobs it runs
go on meanwhile.

Stopping is a flag as well as a cancellation: redis-py's reads under ``asyncio.timeout`` (Python 3.11) now and
then swallow a cancellation that lands mid-command, which left ``mull worker`` polling after SIGTERM. With the
flag set, the next poll ends the loop whatever became of the cancellation.
"""

from __future__ import annotations

import asyncio
import time
from signal import Signals
from typing import Any

from arq import Worker

from worker.liveness import REDIS_TROUBLE

# What a worker's Redis command waits through before it raises: longer than a failover with Sentinel's
# default down-after-milliseconds (30 s) plus an election. Job code that still sees an error retries the job.
WORKER_KEEP_TRYING_S = 60.0


class SteadyWorker(Worker):
    """arq's Worker whose poll survives Redis errors; ``log`` is Mull's structured logger."""

    def __init__(self, *args: Any, log: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._log = log
        self._outage_since: float | None = None
        self._stopping = False

    def stop(self) -> None:
        """End the poll loop at its next turn (and cancel it now, when arq runs it as its main task)."""
        self._stopping = True
        if self.main_task is not None:
            self.main_task.cancel()

    def handle_sig(self, signum: Signals) -> None:
        self._stopping = True
        super().handle_sig(signum)

    async def _poll_iteration(self) -> None:
        if self._stopping:
            raise asyncio.CancelledError("worker stopping")
        try:
            await super()._poll_iteration()
        except REDIS_TROUBLE as exc:
            if self._outage_since is None:
                self._outage_since = time.monotonic()
                self._log.warning("worker cannot reach Redis; polling on, running jobs go on",
                                  error=str(exc)[:200])
            return
        if self._outage_since is not None:
            self._log.info("worker reached Redis again", outage_s=round(time.monotonic() - self._outage_since, 1))
            self._outage_since = None
