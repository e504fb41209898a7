"""Worker heartbeats, and the reclaim of jobs whose worker died.

arq reruns a killed worker's job only when its in-progress key expires: the largest job timeout plus
10 s, which for agent runs is most of an hour. Each worker instead records which jobs it runs and beats a
short-lived key; when a worker stays silent, any other worker releases its jobs.

Releasing the jobs of a worker that is in fact alive runs them twice, so the heartbeat and the reclaim are
built so that a lapse is not taken for a death:

- The beat never stops. Any Redis error (``RedisError`` is not an ``OSError``) is logged once per outage and
  the next beat tries again. Every beat is one transaction that writes the whole registration: the
  heartbeat, the worker's place in the set of workers, and its job set rewritten from what it runs now. A
  flushed or restarted Redis therefore shows the worker alive, with its jobs, within one beat.
- A missing heartbeat only makes a worker *suspect*. The first reclaim that finds it missing writes a
  suspect mark (Redis' own time); every beat deletes that mark. The jobs are released only by a reclaim
  that finds the heartbeat still missing and the mark older than ``grace``, i.e. no beat at all since it
  was written. After a Redis restart, when every heartbeat has expired at once, the live workers beat
  again within ``interval`` and clear their marks long before ``grace`` runs out.
- Check and release are one Lua script, so they are one step in Redis: a beat lands either before it
  (the reclaim sees the heartbeat and only clears the mark) or after it (the worker was silent for
  ``ttl + grace`` and was released; its beat then registers it afresh with the jobs it still runs).

What this cannot tell apart is a dead worker from one cut off from Redis for longer than ``ttl + grace``
while its jobs keep running: those jobs are released, as arq itself would after its own expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

from arq import constants as arq_keys
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot import keys
from worker import failures

ARQ_IN_PROGRESS = arq_keys.in_progress_key_prefix
REDIS_TROUBLE = (RedisError, OSError)

# KEYS: heartbeat, suspect mark, job set, workers. ARGV: worker id, grace (ms), arq's in-progress prefix.
# Returns false while the worker is alive or not yet suspect long enough, else the list of released jobs.
_RECLAIM = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('DEL', KEYS[2])
  return false
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local since = redis.call('GET', KEYS[2])
if not since then
  redis.call('SET', KEYS[2], now, 'PX', 24 * 3600 * 1000)
  return false
end
if now - tonumber(since) < tonumber(ARGV[2]) then
  return false
end
local jobs = redis.call('SMEMBERS', KEYS[3])
for _, job in ipairs(jobs) do
  redis.call('DEL', ARGV[3] .. job)
end
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('SREM', KEYS[4], ARGV[1])
return jobs
"""


class Liveness:
    """One worker's registration; ``grace`` (default ``ttl``) is how long a silent worker stays suspect."""

    def __init__(self, redis: Redis, ttl: float = 20.0, interval: float = 3.0, log: Any = None,
                 grace: float | None = None) -> None:
        self.redis = redis
        self.worker_id = uuid.uuid4().hex
        self.ttl = ttl
        self.interval = interval
        self.grace = ttl if grace is None else grace
        self.log = log
        self.jobs: set[str] = set()  # what this worker runs now: the truth its job set in Redis is rewritten from
        self._outage_since: float | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.beat()
        await self.reclaim()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(*REDIS_TROUBLE):  # Redis down at shutdown: the registration expires or is reclaimed
            await self.redis.delete(keys.worker_heartbeat(self.worker_id), keys.worker_jobs(self.worker_id))
            await self.redis.srem(keys.WORKERS, self.worker_id)

    async def beat(self) -> None:
        """Write the whole registration in one transaction: a flushed Redis has it back after one beat."""
        jobs_key = keys.worker_jobs(self.worker_id)
        async with self.redis.pipeline(transaction=True) as tx:
            tx.set(keys.worker_heartbeat(self.worker_id), 1, px=int(self.ttl * 1000))
            tx.delete(keys.worker_suspect(self.worker_id))
            tx.sadd(keys.WORKERS, self.worker_id)
            tx.delete(jobs_key)
            if self.jobs:
                tx.sadd(jobs_key, *sorted(self.jobs))
            await tx.execute()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.beat()
                await self.reclaim()
            except REDIS_TROUBLE as exc:
                self._outage(exc)
            except Exception as exc:  # the loop's own boundary: a bug must not silence the heartbeat for good
                if self.log:  # one line; the traceback only for DEBUG logs
                    self.log.error(f"heartbeat failed: {failures.describe(exc)}")
                    self.log.debug("traceback of the heartbeat failure", exc_info=True)
            else:
                self._recovered()

    def _outage(self, exc: BaseException) -> None:
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            if self.log:
                self.log.warning("heartbeat cannot reach Redis; beating on", error=str(exc)[:200],
                                 worker_id=self.worker_id)

    def _recovered(self) -> None:
        if self._outage_since is not None:
            if self.log:
                self.log.info("heartbeat reached Redis again; worker re-registered", worker_id=self.worker_id,
                              outage_s=round(time.monotonic() - self._outage_since, 1))
            self._outage_since = None

    async def job_started(self, job_id: str) -> None:
        self.jobs.add(job_id)
        with contextlib.suppress(*REDIS_TROUBLE):  # the next beat writes it
            await self.redis.sadd(keys.worker_jobs(self.worker_id), job_id)

    async def job_ended(self, job_id: str) -> None:
        self.jobs.discard(job_id)
        with contextlib.suppress(*REDIS_TROUBLE):  # the next beat rewrites the set without it
            await self.redis.srem(keys.worker_jobs(self.worker_id), job_id)

    async def reclaim(self) -> list[str]:
        """Release the jobs of every worker silent for longer than its heartbeat plus ``grace``; return them."""
        released: list[str] = []
        for raw in await self.redis.smembers(keys.WORKERS):
            worker_id = raw.decode()
            if worker_id == self.worker_id:
                continue
            jobs = await self.redis.eval(
                _RECLAIM, 4, keys.worker_heartbeat(worker_id), keys.worker_suspect(worker_id),
                keys.worker_jobs(worker_id), keys.WORKERS, worker_id, str(int(self.grace * 1000)), ARQ_IN_PROGRESS)
            if jobs:
                released += [j.decode() for j in jobs]
                if self.log:
                    self.log.warning("reclaimed jobs of a dead worker", dead_worker=worker_id,
                                     jobs=[j.decode() for j in jobs])
        return released
