"""An arq Worker that outlives a Redis outage and a SIGKILL of any worker without losing or doubling a job.

arq lets any Redis error out of its poll loop, which ends ``mull worker``: its running agent runs die with it,
and once its heartbeat lapses another worker runs them again from the start. Mull's Redis clients already
retry connection errors for a while (``WORKER_KEEP_TRYING_S``, which covers a Redis restart and a Sentinel
failover); when an outage lasts longer, a poll fails, this worker logs it once, waits a poll and tries again,
and the jobs it runs go on meanwhile.

Two of arq's steps are replaced so that a worker's death is always recoverable (``worker/liveness.py``):

- Taking a job is one script that also records this worker as its holder, instead of arq's WATCH/MULTI
  followed later by ``on_job_start``. arq's version also leaks a job slot for good when the connection
  drops inside its WATCH: after ``max_jobs`` such drops the worker never takes a job again.
- A job leaves the worker's record only after arq recorded its end (after ``finish_job``), not before, so a
  kill between the two cannot leave a job held by nobody who will ever be reclaimed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from arq import Worker

from worker.liveness import REDIS_TROUBLE, Liveness

# What a worker's Redis command waits through before it raises: longer than a failover with Sentinel's
# default down-after-milliseconds (30 s) plus an election. Job code that still sees an error retries the job.
WORKER_KEEP_TRYING_S = 60.0


def _stop_if_cancelled() -> None:
    """Stop a poll loop whose task was cancelled but runs on. On Python 3.11, ``asyncio.wait_for`` (which
    redis-py wraps around every send) swallows a cancellation that arrives just as the send completes: the
    cancelled worker would poll for ever, and a SIGTERM would never stop it."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class SteadyWorker(Worker):
    """arq's Worker whose poll survives Redis errors; ``log`` is Mull's structured logger, ``liveness`` this
    worker's registration (started by the worker's startup hook)."""

    def __init__(self, *args: Any, log: Any, liveness: Liveness, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._log = log
        self.liveness = liveness
        self._outage_since: float | None = None

    async def _poll_iteration(self) -> None:
        _stop_if_cancelled()
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
        _stop_if_cancelled()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """arq's ``start_jobs`` with the take and the holder's record as one step, and no slot lost on an error."""
        for raw in job_ids:
            await self.sem.acquire()
            if self.job_counter >= self.max_jobs:
                self.sem.release()
                return
            self.job_counter += 1
            job_id = raw.decode()
            try:
                score = await self.liveness.take(job_id, self.queue_name, int(self.in_progress_timeout_s * 1000))
            except BaseException:
                self._release_sem_dec_counter_on_complete()
                raise
            if score is None:  # running elsewhere, no longer queued, or re-deferred by another worker
                self._release_sem_dec_counter_on_complete()
                continue
            task = self.loop.create_task(self.run_job(job_id, score))
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            self.tasks[job_id] = task

    async def run_job(self, job_id: str, score: int) -> None:
        recorded = False
        try:
            await super().run_job(job_id, score)
            recorded = True
        finally:
            await self.liveness.job_ended(job_id, recorded=recorded)
