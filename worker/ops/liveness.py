"""Worker heartbeats, and the reclaim of jobs whose worker died.

arq reruns a killed worker's job only when its in-progress key expires: the largest job timeout plus
10 s, which for agent runs is most of an hour. Each worker instead records which jobs it runs and beats a
short-lived key; when a worker stays silent, any other worker releases its jobs.

Releasing the jobs of a worker that is in fact alive runs them twice, so the heartbeat and the reclaim are
built so that a lapse is not taken for a death:

- The beat never stops. Any Redis error (``RedisError`` is not an ``OSError``) is logged once per outage and
  the next beat tries again. Every beat is one transaction that writes the whole registration: the
  heartbeat, the worker's place in the set of workers, and the jobs it runs now added to its job set. A
  flushed or restarted Redis therefore shows the worker alive, with its jobs, within one beat.
- A missing heartbeat only makes a worker *suspect*. The first reclaim that finds it missing writes a
  suspect mark (Redis' own time); every beat deletes that mark. The jobs are released only by a reclaim
  that finds the heartbeat still missing and the mark older than ``grace``, i.e. no beat at all since it
  was written. After a Redis restart, when every heartbeat has expired at once, the live workers beat
  again within ``interval`` and clear their marks long before ``grace`` runs out.
- Check and release are one Lua script, so they are one step in Redis: a beat lands either before it
  (the reclaim sees the heartbeat and only clears the mark) or after it (the worker was silent for
  ``ttl + grace`` and was released; its beat then registers it afresh with the jobs it still runs).

- A worker takes a job and records itself as its holder in one Lua script (``take``): arq's in-progress key
  holds the worker's id, and the job joins the worker's job set in the same step. A worker killed between
  the two can therefore leave no job that is held but unlisted, which nothing would release for most of an
  hour.
- The reclaim releases only the jobs whose in-progress key still names the dead worker. A job id in its set
  may be stale (its removal failed during an outage, then the job was retried and taken by a live worker):
  releasing it would run that live worker's job twice.
- A queued job held in a worker's own name that the worker does not run is taken again by that worker's
  next poll. Two ways lead there, both through a Sentinel failover: a take whose reply was lost is replayed
  by the client's retry on the new master, which already has the key; and a job's end recorded on the old
  master just before it died never reached the replica, so the new master still shows the job queued and
  held. Either way the holder is alive, so no reclaim would free the job: it would wait for arq's expiry,
  most of an hour, and the installation's runs behind it.

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
from worker.github import failures
from worker.ops.redis_reply import reply

ARQ_IN_PROGRESS = arq_keys.in_progress_key_prefix
REDIS_TROUBLE = (RedisError, OSError)

# KEYS: heartbeat, suspect mark, job set, workers. ARGV: worker id, grace (ms), arq's in-progress prefix.
# Returns false while the worker is alive or not yet suspect long enough, else the jobs it released: those whose
# in-progress key still names the dead worker.
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
local released = {}
for _, job in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  if redis.call('GET', ARGV[3] .. job) == ARGV[1] then
    redis.call('DEL', ARGV[3] .. job)
    table.insert(released, job)
  end
end
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('SREM', KEYS[4], ARGV[1])
return released
"""

# KEYS: the job's in-progress key, the queue, the worker's job set. ARGV: job id, now (ms), in-progress expiry
# (ms), worker id. arq's own check (not running elsewhere, still queued, due) and Mull's record of the holder,
# as one step. Returns the job's score, or false when it is not to be taken. A job held in this worker's own
# name is taken again: the caller runs this only for jobs it does not run (see ``Liveness.take``).
_TAKE = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[4] then
  return false
end
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then
  return false
end
redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[3])
redis.call('SADD', KEYS[3], ARGV[1])
return score
"""

# KEYS: the job's in-progress key, the worker's job set. ARGV: worker id, job id. For a job this worker may
# hold without running it (a take whose reply was lost, a run whose end arq could not record): let it go.
_LET_GO = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
redis.call('SREM', KEYS[2], ARGV[2])
return 1
"""


class Liveness:
    """One worker's registration; ``ttl`` is MULL_WORKER_HEARTBEAT, ``grace`` (default ``ttl``) how long a
    silent worker stays suspect."""

    def __init__(self, redis: Redis, ttl: float = 20.0, interval: float | None = None, log: Any = None,
                 grace: float | None = None) -> None:
        self.redis = redis
        self.worker_id = uuid.uuid4().hex
        self.ttl = ttl
        # Several beats within a heartbeat's life: a beat or two lost to a slow moment never lets it expire.
        self.interval = min(3.0, ttl / 5) if interval is None else interval
        self.grace = ttl if grace is None else grace
        self.log = log
        self.jobs: set[str] = set()  # what this worker runs now: every beat adds them to its job set in Redis
        self._ended: set[str] = set()  # ended, but their removal from the job set in Redis is not confirmed
        self._unsure: set[str] = set()  # maybe held in Redis without running here: let go at the next beat
        self._outage_since: float | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.beat()
        await self.reclaim()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.wait([self._task])  # unlike awaiting it, never swallows a cancellation of this task
        with contextlib.suppress(*REDIS_TROUBLE):  # Redis down at shutdown: the registration expires or is reclaimed
            await self.redis.delete(keys.worker_heartbeat(self.worker_id), keys.worker_jobs(self.worker_id))
            await reply(self.redis.srem(keys.WORKERS, self.worker_id))

    async def beat(self) -> None:
        """Write the whole registration in one transaction: a flushed Redis has it back after one beat.

        The job set is only ever added to here, never rewritten: a take (one script) may land between a beat's
        reading ``jobs`` and its transaction, and a rewrite would drop that job from the set."""
        jobs_key = keys.worker_jobs(self.worker_id)
        ended = sorted(self._ended - self.jobs)
        async with self.redis.pipeline(transaction=True) as tx:
            tx.set(keys.worker_heartbeat(self.worker_id), 1, px=int(self.ttl * 1000))
            tx.delete(keys.worker_suspect(self.worker_id))
            tx.sadd(keys.WORKERS, self.worker_id)
            if self.jobs:
                tx.sadd(jobs_key, *sorted(self.jobs))
            if ended:
                tx.srem(jobs_key, *ended)
            await tx.execute()
        self._ended.difference_update(ended)
        for job_id in sorted(self._unsure - self.jobs):
            await reply(self.redis.eval(_LET_GO, 2, ARQ_IN_PROGRESS + job_id, jobs_key, self.worker_id, job_id))
            self._unsure.discard(job_id)

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

    async def take(self, job_id: str, queue: str, in_progress_ms: int) -> int | None:
        """Take a due job for this worker, recorded as its holder in the same step; its score, or None when it
        runs elsewhere, is no longer queued or not yet due. A Redis error propagates (the job was perhaps
        taken: it is let go at the next beat)."""
        if job_id in self.jobs:  # runs here: arq lists running jobs among the queued ones
            return None
        self.jobs.add(job_id)  # before the script: a beat from now on lists it, whenever the script lands
        try:
            score = await reply(self.redis.eval(
                _TAKE, 3, ARQ_IN_PROGRESS + job_id, queue, keys.worker_jobs(self.worker_id), job_id,
                str(int(time.time() * 1000)), str(in_progress_ms), self.worker_id))
        except BaseException:
            self.jobs.discard(job_id)
            self._unsure.add(job_id)
            raise
        if score is None:
            self.jobs.discard(job_id)
            return None
        self._unsure.discard(job_id)  # held for sure now, and let go only by its end
        return int(float(score))

    async def job_ended(self, job_id: str, *, recorded: bool = True) -> None:
        """After arq recorded the job's end; ``recorded=False`` when it could not (the job is let go)."""
        self.jobs.discard(job_id)
        if not recorded:
            self._unsure.add(job_id)
            return
        try:
            await reply(self.redis.srem(keys.worker_jobs(self.worker_id), job_id))
        except REDIS_TROUBLE:  # the next beat removes it
            self._ended.add(job_id)

    async def reclaim(self) -> list[str]:
        """Release the jobs of every worker silent for longer than its heartbeat plus ``grace``; return them."""
        released: list[str] = []
        for raw in await reply(self.redis.smembers(keys.WORKERS)):
            worker_id = raw.decode()
            if worker_id == self.worker_id:
                continue
            jobs: Any = await reply(self.redis.eval(  # redis-py types eval's reply as str: it is the list
                _RECLAIM, 4, keys.worker_heartbeat(worker_id), keys.worker_suspect(worker_id),
                keys.worker_jobs(worker_id), keys.WORKERS, worker_id, str(int(self.grace * 1000)), ARQ_IN_PROGRESS))
            if jobs:
                released += [j.decode() for j in jobs]
                if self.log:
                    self.log.warning("reclaimed jobs of a dead worker", dead_worker=worker_id,
                                     jobs=[j.decode() for j in jobs])
        return released
