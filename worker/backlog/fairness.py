"""Per-installation run slots: one organisation's 200 labeled issues cannot starve another's one.

arq serves jobs in queue order. A run that finds its installation's slots full re-defers itself, which moves
it behind the other installations' waiting runs. Slots are held per job id, so a run that is retried or
reclaimed after a crash keeps its slot instead of needing a new one; a slot also expires with the job's
timeout, so a run that never comes back cannot hold it forever.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from redis.exceptions import RedisError

from bot import keys
from worker.jobs.queue import wait_untried
from worker.jobs.services import Services

WAIT_SECONDS = 5.0
RELEASE_PATIENCE_S = 30.0  # a Sentinel failover takes a few seconds; a restarted Redis a few more

_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[3]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[4]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
  return 1
end
return 0
"""


class RunSlots:
    def __init__(self, redis: Any, limit: int, hold_seconds: float) -> None:
        self.redis = redis
        self.limit = limit
        self.hold_seconds = hold_seconds
        self._acquire = redis.register_script(_ACQUIRE)

    async def acquire(self, installation_id: int, job_id: str) -> bool:
        now = time.time()
        return bool(await self._acquire(keys=[keys.run_slots(installation_id)],
                                        args=[now, now + self.hold_seconds, job_id, self.limit]))

    async def release(self, installation_id: int, job_id: str) -> None:
        """Give the slot back, through a Redis failover or restart of up to RELEASE_PATIENCE_S: a slot whose
        release is lost stays held until the job's timeout, and with it the installation's waiting runs."""
        deadline = time.monotonic() + RELEASE_PATIENCE_S
        pause = 0.1
        while True:
            try:
                await self.redis.zrem(keys.run_slots(installation_id), job_id)
                return
            except (RedisError, OSError):
                if time.monotonic() + pause > deadline:
                    raise
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)

    async def holders(self, installation_id: int) -> list[str]:
        return [m.decode() for m in await self.redis.zrangebyscore(keys.run_slots(installation_id), time.time(),
                                                                   "+inf")]


async def wait_for_slot(svc: Services, job_id: str, installation_id: int) -> None:
    """Take a slot for this job, or re-defer it behind other installations' runs.

    Waiting for a slot is not a failed try: the try arq just counted is handed back, so the job's tries
    stay for real failures.
    """
    slots: RunSlots = svc.slots
    if await slots.acquire(installation_id, job_id):
        return
    await wait_untried(svc.redis, job_id, WAIT_SECONDS)
