"""Jobs of a dead worker are released at once instead of after arq's long in-progress expiry."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from bot import keys
from worker.liveness import ARQ_IN_PROGRESS, Liveness


def test_dead_workers_jobs_are_released_and_live_ones_kept(redis_url: str) -> None:
    async def scenario() -> None:
        conn = aioredis.Redis.from_url(redis_url)
        dead = Liveness(conn, ttl=0.2)
        alive = Liveness(conn, ttl=30)
        await dead.start()
        await alive.start()
        await dead.job_started("solve:1:2")
        await alive.job_started("solve:1:3")
        for job in ("solve:1:2", "solve:1:3"):
            await conn.set(ARQ_IN_PROGRESS + job, 1, ex=3600)
        assert dead._task is not None
        dead._task.cancel()  # the process "dies": no more beats, nothing cleaned up
        await asyncio.sleep(0.4)
        observer = Liveness(conn, ttl=30)
        assert await observer.reclaim() == ["solve:1:2"]
        assert not await conn.exists(ARQ_IN_PROGRESS + "solve:1:2")
        assert await conn.exists(ARQ_IN_PROGRESS + "solve:1:3")
        assert dead.worker_id.encode() not in await conn.smembers(keys.WORKERS)
        await alive.stop()
        await conn.aclose()

    asyncio.run(scenario())
