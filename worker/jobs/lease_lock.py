"""A Redis lock held as a lease: short, renewed while its holder lives, gone soon after its holder dies.

A lock with one fixed timeout is wrong both ways. Long enough for the slowest holder (a GitHub call that
retries), it keeps everyone waiting that long after a SIGKILLed worker took it; short, it expires under a
holder that is merely slow, and two workers edit the same status comment at once. A lease lasts ``lease``
seconds (the worker's heartbeat, so a dead worker's locks go when its jobs are released) and its holder renews
it every third of that for as long as the block runs. Release and renewal check the holder's token, so a lease
that did run out is never extended or deleted by its former holder.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from redis.exceptions import RedisError

ISSUE_LOCK_WAIT_S = 60  # an issue's lock (bot.keys.issue_lock) is held for a few GitHub calls
FIRST_PAUSE_S = 0.02
LONGEST_PAUSE_S = 0.5

# KEYS: the lock. ARGV: token, lease (ms). 1 while the token still holds it.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS: the lock. ARGV: token.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class LeaseTimeout(TimeoutError):
    def __init__(self, key: str, wait: float) -> None:
        super().__init__(f"lock {key} stayed taken for {wait:g} s: another worker holds it and is still working")


@contextlib.asynccontextmanager
async def lease_lock(redis: Any, key: str, *, lease: float, wait: float, log: Any = None) -> AsyncIterator[None]:
    """Hold ``key`` for the block, renewed every ``lease / 3`` s; LeaseTimeout after waiting ``wait`` s."""
    token = uuid.uuid4().hex
    lease_ms = max(int(lease * 1000), 100)
    deadline, pause = time.monotonic() + wait, FIRST_PAUSE_S
    while not await redis.set(key, token, nx=True, px=lease_ms):
        if time.monotonic() + pause > deadline:
            raise LeaseTimeout(key, wait)
        await asyncio.sleep(pause)
        pause = min(pause * 2, LONGEST_PAUSE_S)
    renewal = asyncio.create_task(_renew(redis, key, token, lease_ms, log))
    try:
        yield
    finally:
        renewal.cancel()
        await asyncio.wait([renewal])  # unlike awaiting it, never swallows a cancellation of this task
        with contextlib.suppress(RedisError, OSError):  # unreleased, it runs out within one lease
            await redis.eval(_RELEASE, 1, key, token)


async def _renew(redis: Any, key: str, token: str, lease_ms: int, log: Any) -> None:
    """Renew until cancelled; a Redis error is tried again at the next turn, a lost lease is logged once."""
    while True:
        await asyncio.sleep(lease_ms / 3000)
        try:
            held = await redis.eval(_RENEW, 1, key, token, str(lease_ms))
        except (RedisError, OSError):
            continue
        if not held:
            if log is not None:
                log.warning("lock lease ran out while held (Redis was out of reach longer than the lease)",
                            lock=key)
            return
