"""Run slots per installation on a real Redis: a limit, re-entry for the same job, expiry, independence."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from bot import keys
from worker.backlog.fairness import RunSlots


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


class FailingOver:
    """The real client, whose first ``fails`` writes meet a connection lost to a failover."""

    def __init__(self, redis: aioredis.Redis, fails: int) -> None:
        self._redis, self.fails = redis, fails

    def __getattr__(self, name: str):  # noqa: ANN204 - everything else is the real client's
        return getattr(self._redis, name)

    async def zrem(self, *args):  # noqa: ANN002, ANN201
        if self.fails:
            self.fails -= 1
            raise RedisConnectionError("Connection closed by server.")
        return await self._redis.zrem(*args)


def test_a_slot_is_given_back_through_a_failover_and_not_after_the_patience(redis_url: str, monkeypatch) -> None:
    from worker.backlog import fairness

    async def scenario() -> None:
        redis = aioredis.Redis.from_url(redis_url)
        await redis.delete(keys.run_slots(4242))
        flaky = FailingOver(redis, fails=3)
        flaky_slots = RunSlots(flaky, limit=1, hold_seconds=3600)
        assert await flaky_slots.acquire(4242, "job-a")
        assert not await RunSlots(redis, limit=1, hold_seconds=3600).acquire(4242, "job-b")
        await flaky_slots.release(4242, "job-a")  # three lost connections, then released
        assert flaky.fails == 0 and await RunSlots(redis, limit=1, hold_seconds=3600).acquire(4242, "job-b")

        monkeypatch.setattr(fairness, "RELEASE_PATIENCE_S", 0.3)
        down = FailingOver(redis, fails=1000)
        try:
            await RunSlots(down, limit=1, hold_seconds=3600).release(4242, "job-b")
        except RedisConnectionError:
            pass
        else:
            raise AssertionError("a Redis that stays down is reported, not waited for forever")
        await redis.aclose()

    asyncio.run(scenario())
