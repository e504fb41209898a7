"""Issue and release locks are leases: renewed while the holder works (however long), gone within a lease once
the holder is killed, never released or renewed by a holder whose lease ran out, and a wait that lasts too
long ends with an error naming the lock."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from worker.jobs.lease_lock import LeaseTimeout, lease_lock

KEY = "mull:lock:issue:1:2"


def test_a_holder_keeps_the_lease_for_as_long_as_it_works(redis_url: str) -> None:
    async def scenario() -> None:
        conn = aioredis.Redis.from_url(redis_url)
        async with lease_lock(conn, KEY, lease=0.3, wait=1):
            await asyncio.sleep(1.0)  # three leases long
            with pytest.raises(LeaseTimeout):
                async with lease_lock(conn, KEY, lease=0.3, wait=0.2):
                    pass
        assert not await conn.exists(KEY)  # released at the end of the block
        async with lease_lock(conn, KEY, lease=0.3, wait=0.2):
            pass
        await conn.aclose()

    asyncio.run(scenario())


HOLD = """
import asyncio, sys
import redis.asyncio as aioredis
from worker.jobs.lease_lock import lease_lock

async def main():
    async with lease_lock(aioredis.Redis.from_url(sys.argv[1]), sys.argv[2], lease=1.0, wait=5):
        print("held", flush=True)
        await asyncio.sleep(600)

asyncio.run(main())
"""


def test_a_killed_holders_lease_runs_out_within_one_lease(redis_url: str) -> None:
    """A lock with a fixed 60 s timeout would keep every later holder waiting a minute."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, redis_url, KEY], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).parent.parent)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        time.sleep(2.5)
        with redis.Redis.from_url(redis_url) as check:
            assert check.get(KEY)  # renewed past two leases
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        killed = time.monotonic()

        async def take() -> None:
            conn = aioredis.Redis.from_url(redis_url)
            async with lease_lock(conn, KEY, lease=1.0, wait=5):
                pass
            await conn.aclose()

        asyncio.run(take())
        assert time.monotonic() - killed < 1.0 + 0.6  # one lease, and one pause of the waiter's polling
    finally:
        holder.kill()
        holder.wait()


def test_a_lease_that_ran_out_is_neither_renewed_nor_released_by_its_former_holder(redis_url: str) -> None:
    async def scenario() -> None:
        conn = aioredis.Redis.from_url(redis_url)

        class Log:
            lines: list[str] = []

            def warning(self, event: str, **kw: object) -> None:
                self.lines.append(event)

        log = Log()
        async with lease_lock(conn, KEY, lease=0.3, wait=1, log=log):
            await conn.set(KEY, "another-holder", px=5000)  # as if the lease had run out during an outage
            await asyncio.sleep(0.3)
        assert await conn.get(KEY) == b"another-holder"
        assert 0 < await conn.pttl(KEY) <= 5000
        assert log.lines == ["lock lease ran out while held (Redis was out of reach longer than the lease)"]
        await conn.aclose()

    asyncio.run(scenario())


def test_a_wait_that_lasts_too_long_names_the_lock(redis_url: str) -> None:
    async def scenario() -> None:
        conn = aioredis.Redis.from_url(redis_url)
        await conn.set(KEY, "someone", px=5000)
        with pytest.raises(LeaseTimeout, match=r"lock mull:lock:issue:1:2 stayed taken for 0\.2 s"):
            async with lease_lock(conn, KEY, lease=1, wait=0.2):
                pass
        await conn.aclose()

    asyncio.run(scenario())
