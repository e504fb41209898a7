"""The worker's own steps around arq's: a job is taken and its holder recorded in one step, a Redis error while
taking one costs no job slot, a job leaves the holder's record only once arq recorded its end, and a stopped
worker stops even where a cancellation never arrives (redis-py can swallow one that lands mid-command)."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import pytest
from arq import constants as arq_keys
from arq.worker import func
from doubles.recording_log import RecordingLog
from redis.exceptions import ConnectionError as RedisConnectionError

from bot import keys
from bot.job_codec import deserialize, serialize
from bot.jobs import QUEUE
from worker.jobs import queue as job_queue
from worker.ops.liveness import Liveness
from worker.ops.steady_worker import SteadyWorker


class FlakyLiveness(Liveness):
    """The connection drops during the first ``failures`` takes."""

    def __init__(self, *args: Any, failures: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.failures = failures

    async def take(self, job_id: str, queue: str, in_progress_ms: int) -> int | None:
        if self.failures:
            self.failures -= 1
            raise RedisConnectionError("Connection closed by server.")
        return await super().take(job_id, queue, in_progress_ms)


class RecordingWorker(SteadyWorker):
    """Notes, when arq records a job's end, whether the job is still on the worker's record."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.listed_at_finish: list[bool] = []

    async def finish_job(self, job_id: str, *args: Any) -> None:
        redis = self.liveness.redis
        self.listed_at_finish.append(bool(await redis.sismember(keys.worker_jobs(self.liveness.worker_id), job_id)))
        await super().finish_job(job_id, *args)


def run(redis_url: str, liveness_of: Any, jobs: int, max_jobs: int = 1) -> tuple[RecordingWorker, list[Any]]:
    seen: list[Any] = []

    async def note(ctx: dict[str, Any], n: int) -> None:
        holder = await ctx["redis"].get(arq_keys.in_progress_key_prefix + ctx["job_id"])
        seen.append((n, holder.decode() if holder else None))

    async def scenario() -> RecordingWorker:
        redis = job_queue.pool(redis_url, keep_trying=1)
        queue = await job_queue.connect(redis_url)
        for n in range(jobs):
            await queue.enqueue_job("note", n, _job_id=f"note:{n}")
        await queue.aclose()
        worker = RecordingWorker([func(note, name="note")], log=RecordingLog(), liveness=liveness_of(redis),
                                 queue_name=QUEUE, poll_delay=0.01, burst=True, max_jobs=max_jobs,
                                 handle_signals=False, redis_pool=redis, job_serializer=serialize,
                                 job_deserializer=deserialize)
        try:
            await asyncio.wait_for(worker.main(), 20)
        finally:
            await worker.close()
        return worker

    return asyncio.run(scenario()), seen


def test_a_running_job_names_its_worker_and_leaves_the_record_after_its_end_is_recorded(redis_url: str) -> None:
    made: list[Liveness] = []

    def liveness(redis: Any) -> Liveness:
        made.append(Liveness(redis, ttl=30))
        return made[0]

    worker, seen = run(redis_url, liveness, jobs=2)
    assert seen == [(0, made[0].worker_id), (1, made[0].worker_id)]
    assert worker.listed_at_finish == [True, True]  # a kill before arq's record leaves it reclaimable
    assert made[0].jobs == set()


def test_a_redis_error_while_taking_a_job_costs_no_job_slot(redis_url: str) -> None:
    """arq's own take leaks its slot when the connection drops inside its WATCH: with one slot, the worker
    would never take a job again."""
    worker, seen = run(redis_url, lambda redis: FlakyLiveness(redis, ttl=30, failures=3), jobs=2)
    assert sorted(n for n, _ in seen) == [0, 1]
    assert worker.job_counter == 0


def test_a_cancelled_worker_stops_even_when_a_step_below_swallowed_the_cancellation(redis_url: str) -> None:
    """Python 3.11's asyncio.wait_for, around every redis-py send, drops a cancellation that arrives as the send
    completes; the worker's poll loop must still end (a SIGTERM must stop the worker)."""
    class Swallowing(SteadyWorker):
        async def heart_beat(self) -> None:
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:  # what wait_for does when its inner send has just completed
                pass

    async def nothing(ctx: dict[str, Any]) -> None:
        return None

    async def scenario() -> bool:
        redis = job_queue.pool(redis_url, keep_trying=1)
        worker = Swallowing([func(nothing, name="nothing")], log=RecordingLog(), liveness=Liveness(redis),
                            queue_name=QUEUE, poll_delay=0.01, handle_signals=False, redis_pool=redis,
                            job_serializer=serialize, job_deserializer=deserialize)
        main = asyncio.create_task(worker.main())
        await asyncio.sleep(0.3)
        main.cancel()
        done, _ = await asyncio.wait([main], timeout=3)
        await worker.close()
        return main in done and main.cancelled()

    assert asyncio.run(scenario())


async def _noop(ctx: dict) -> None:
    return None


def _worker(redis_url: str) -> SteadyWorker:
    redis = job_queue.pool(redis_url, keep_trying=1, socket_timeout=10)
    return SteadyWorker(log=RecordingLog(), functions=[_noop], queue_name=QUEUE, liveness=Liveness(redis, ttl=30),
                        redis_pool=redis,
                        job_serializer=serialize, job_deserializer=deserialize, poll_delay=0.02,
                        handle_signals=False)


def test_stop_ends_the_poll_loop_without_any_cancellation(redis_url: str) -> None:
    async def scenario() -> None:
        worker = _worker(redis_url)
        main = asyncio.create_task(worker.main())  # not arq's main_task: stop() can only set the flag
        await asyncio.sleep(0.1)
        assert not main.done()  # polling
        worker.stop()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(main, 2)
        await worker.close()

    asyncio.run(scenario())


def test_a_signal_sets_the_stop_flag_as_well_as_cancelling(redis_url: str) -> None:
    async def scenario() -> None:
        worker = _worker(redis_url)
        main = asyncio.create_task(worker.main())
        await asyncio.sleep(0.1)
        worker.handle_sig(signal.SIGTERM)  # no main_task to cancel here: only the flag can end the loop
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(main, 2)
        await worker.close()

    asyncio.run(scenario())


def test_an_idle_worker_starts_new_work_at_once_not_at_its_next_poll(redis_url: str) -> None:
    """Between polls the worker waits on the new-work signal: with a poll delay of a minute, a job enqueued for
    now still starts, and a deferred one pushes no token (it is noticed by the polls)."""
    ran = asyncio.Event()

    async def note(ctx: dict[str, Any]) -> None:
        ran.set()

    async def scenario() -> tuple[int, int]:
        redis = job_queue.pool(redis_url, keep_trying=1, socket_timeout=10)
        worker = SteadyWorker([func(note, name="note")], log=RecordingLog(), liveness=Liveness(redis, ttl=30),
                              queue_name=QUEUE, poll_delay=60, handle_signals=False, redis_pool=redis,
                              job_serializer=serialize, job_deserializer=deserialize)
        main = asyncio.create_task(worker.main())
        try:
            await asyncio.sleep(0.2)  # started, polled once, now waiting
            await redis.enqueue_job("note", _job_id="later", _defer_by=30)
            deferred_tokens = await redis.llen(keys.NEW_WORK)
            await redis.enqueue_job("note", _job_id="now")
            await asyncio.wait_for(ran.wait(), 10)
            await asyncio.gather(*worker.tasks.values())  # its end recorded before the worker closes
            return deferred_tokens, await redis.llen(keys.NEW_WORK)
        finally:
            worker.stop()
            main.cancel()  # the flag alone ends the loop at its next poll, a minute away here
            await asyncio.wait([main], timeout=5)
            await worker.close()

    deferred_tokens, left = asyncio.run(scenario())
    assert deferred_tokens == 0 and left == 0  # the worker took the one token there was


def test_tokens_of_new_work_are_capped_however_much_waits(redis_url: str) -> None:
    async def scenario() -> int:
        redis = job_queue.pool(redis_url, keep_trying=1)
        try:
            for n in range(keys.NEW_WORK_MAX * 3):
                await redis.enqueue_job("note", _job_id=f"job-{n}")
            return await redis.llen(keys.NEW_WORK)
        finally:
            await redis.aclose()

    assert asyncio.run(scenario()) == keys.NEW_WORK_MAX
