"""An arq Worker that outlives a Redis outage instead of exiting on it.

arq lets any Redis error out of its poll loop, which ends ``mull worker``: its running agent runs die with it,
and once its heartbeat lapses another worker runs them again from the start. Mull's Redis clients already
retry connection errors for a while (``WORKER_KEEP_TRYING_S``, which covers a Sentinel failover); when an
outage lasts longer, a poll fails, this worker logs it once, waits a poll and tries again, and the jobs it runs
go on meanwhile.

It also stops the way Mull's processes stop (worker/supervise.py handles their signals, not arq): a stop names
the signal that asked for it, is logged once, and ends with arq's close, so its shutdown hooks always run.
"""

from __future__ import annotations

import asyncio
import signal
import time
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
        self._stopped = False
        # arq calls on_stop once it has cancelled the main task, on either of its ways to stop.
        self.on_stop = lambda _sig: self._mark_stopped()

    def _mark_stopped(self) -> None:
        self._stopped = True

    async def _poll_iteration(self) -> None:
        if self._stopped:  # the main task's cancellation can be swallowed inside redis-py: stop all the same
            raise asyncio.CancelledError
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

    def stop(self) -> None:
        """End the poll loop at its next turn: for a caller that runs ``main()`` as its own task."""
        self._mark_stopped()
        if self.main_task is not None:
            self.main_task.cancel()

    def request_stop(self, sig: int, *, force: bool = False) -> None:
        """Stop polling; running jobs finish within MULL_SHUTDOWN_WAIT (``force``: at once), then are cancelled
        and rerun elsewhere. arq's own handlers do the work and log the signal's name."""
        if self._job_completion_wait and not force and not self._stopping:
            self._stopping = True
            self.handle_sig_wait_for_completion(signal.Signals(sig))
        else:
            self._stop(signal.Signals(sig).name, log=not self._stopping or force)

    def handle_sig(self, signum: Any) -> None:
        """arq's close() calls this with SIGUSR1 when it does not own the signals: that is no signal, and a stop
        already requested was logged with the real one."""
        reason = "shutdown" if signum == signal.SIGUSR1 else signal.Signals(signum).name
        self._stop(reason, log=not self._stopping)

    def _stop(self, reason: str, *, log: bool) -> None:
        self._stopping = True
        ongoing = [task for task in self.tasks.values() if not task.done()]
        if log:
            self._log.info("worker stopping", reason=reason, jobs_complete=self.jobs_complete,
                           jobs_failed=self.jobs_failed, jobs_cancelled=len(ongoing))
        for task in ongoing:
            task.cancel()
        if self.main_task is not None:
            self.main_task.cancel()
        self._mark_stopped()

    async def run_until_stopped(self) -> None:
        """Poll until stopped (or, in burst mode, until the queue is empty), then close: shutdown hooks run."""
        try:
            await self.async_run()
        except asyncio.CancelledError:
            if not self._stopping:  # a cancellation of this coroutine itself, not a stop
                raise
        finally:
            # Cancelled jobs end as they end; arq's close gathers them again and must not see a cancellation.
            await asyncio.gather(*self.tasks.values(), return_exceptions=True)
            self.tasks = {job_id: task for job_id, task in self.tasks.items() if not task.done()}
            await self.close()
