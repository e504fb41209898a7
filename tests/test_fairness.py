"""Run slots per installation on a real Redis: a limit, re-entry for the same job, expiry, independence."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from worker.fairness import RunSlots


def test_slots_limit_reenter_expire_and_stay_per_installation(redis_url: str) -> None:
    async def scenario() -> None:
        conn = aioredis.Redis.from_url(redis_url)
        slots = RunSlots(conn, limit=2, hold_seconds=0.3)
        assert await slots.acquire(1, "solve:1:1") and await slots.acquire(1, "solve:1:2")
        assert not await slots.acquire(1, "solve:1:3")  # full
        assert await slots.acquire(1, "solve:1:1")  # a retried or reclaimed job keeps its slot
        assert await slots.acquire(2, "solve:2:1")  # another installation is not affected
        await slots.release(1, "solve:1:2")
        assert await slots.acquire(1, "solve:1:3")
        await asyncio.sleep(0.4)  # slots of runs that never came back expire
        assert await slots.acquire(1, "solve:1:4") and await slots.acquire(1, "solve:1:5")
        assert sorted(await slots.holders(1)) == ["solve:1:4", "solve:1:5"]
        await conn.aclose()

    asyncio.run(scenario())
