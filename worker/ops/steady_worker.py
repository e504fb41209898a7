"""An arq Worker that outlives a Redis outage and a SIGKILL of any worker without losing or doubling a job.

arq lets any Redis error out of its poll loop, which ends ``mull worker``: its running agent runs die with it,
and once its heartbeat lapses another worker runs them again from the start. Mull's Redis clients already
retry connection errors for a while (``WORKER_KEEP_TRYING_S``, which covers a Redis restart and a Sentinel
failover); when an outage lasts longer, a poll fails, this worker logs it once, waits a poll and tries again,
and the jobs it runs go on meanwhile.

Two of arq's steps are replaced so that a worker's death is always recoverable (``worker/ops/liveness.py``):

- Taking a job is one script that also records this worker as its holder, instead of arq's WATCH/MULTI
  followed later by ``on_job_start``. arq's version also leaks a job slot for good when the connection
  drops inside its WATCH: after ``max_jobs`` such drops the worker never takes a job again.
- A job leaves the worker's record only after arq recorded its end (after ``finish_job``), not before, so a
  kill between the two cannot leave a job held by nobody who will ever be reclaimed.

Between polls an idle worker waits on the new-work signal (``bot.keys.NEW_WORK``) instead of sleeping: whatever
enqueues a job due now (the receiver's deliveries, a job queueing the next) pushes a token in the same script, so
a job starts within a round trip rather than at the next poll, and the poll delay only bounds how late a
deferred job or a lost token is noticed.

It also stops the way Mull's processes stop (worker/ops/supervise.py handles their signals, not arq): a stop names
the signal that asked for it, is logged once, and ends with arq's close, so its shutdown hooks always run.
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

from arq import Worker
from arq.worker import log_redis_info, logger

from bot import keys
from worker.ops.liveness import REDIS_TROUBLE, Liveness

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
        self._stopping = False
        self._stopped = False
        # arq calls on_stop once it has cancelled the main task, on either of its ways to stop.
        self.on_stop = lambda _sig: self._mark_stopped()

    def _mark_stopped(self) -> None:
        self._stopped = True

    async def main(self) -> None:
        """arq's ``main`` (a pool is always given: worker/app.py) with ``wait_for_work`` between polls."""
        logger.info("Starting worker for %d functions: %s", len(self.functions), ", ".join(self.functions))
        await log_redis_info(self.pool, logger.info)
        self.ctx["redis"] = self.pool
        if self.on_startup:
            await self.on_startup(self.ctx)
        loop = asyncio.get_running_loop()
        while True:
            polled = loop.time()
            await self._poll_iteration()
            if self.burst:
                if 0 <= self.max_burst_jobs <= self._jobs_started():
                    await asyncio.gather(*self.tasks.values())
                    return
                if await self.pool.zcard(self.queue_name) == 0:
                    await asyncio.gather(*self.tasks.values())
                    return
            await self.wait_for_work(self.poll_delay_s - (loop.time() - polled))

    async def wait_for_work(self, seconds: float) -> None:
        """Until a token of new work arrives or ``seconds`` pass; a full worker just waits (a token it took
        would only wake it to find no free slot: the job waits for a slot either way)."""
        if seconds < 0.001:
            return
        if self.job_counter >= self.max_jobs or self._outage_since is not None:
            await asyncio.sleep(seconds)
            return
        try:
            await self.pool.execute_command("BLPOP", keys.NEW_WORK, f"{seconds:.3f}")  # Redis 6+: fractions
        except REDIS_TROUBLE:
            await asyncio.sleep(seconds)  # the next poll reports the outage

    async def _poll_iteration(self) -> None:
        if self._stopped:  # the main task's cancellation can be swallowed inside redis-py: stop all the same
            raise asyncio.CancelledError
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

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """arq's ``start_jobs`` with the take and the holder's record as one step, and no slot lost on an error."""
        for raw in job_ids:
            if raw.decode() in self.liveness.jobs:  # running here: arq keeps a job queued until it ends
                continue
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
