"""A stopped worker stops: the stop flag ends the poll loop even where a cancellation never arrives (redis-py
can swallow one that lands mid-command), and a signal sets it as arq's own handler cancels."""

from __future__ import annotations

import asyncio
import signal

import pytest
import structlog

from bot.job_codec import deserialize, serialize
from bot.jobs import QUEUE
from worker.job_queue import pool
from worker.steady_worker import SteadyWorker


async def _noop(ctx: dict) -> None:
    return None


def _worker(redis_url: str) -> SteadyWorker:
    return SteadyWorker(log=structlog.get_logger(), functions=[_noop], queue_name=QUEUE,
                        redis_pool=pool(redis_url, keep_trying=1, socket_timeout=10),
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
