"""Worker heartbeats, and the reclaim of jobs whose worker died.

arq reruns a killed worker's job only when its in-progress key expires: the largest job timeout plus
10 s, which for agent runs is most of an hour. Each worker instead records which jobs it runs and beats a
short-lived key; when a beat stops, any worker releases the dead one's jobs at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from redis.asyncio import Redis

from bot import keys

ARQ_IN_PROGRESS = "arq:in-progress:"


class Liveness:
    def __init__(self, redis: Redis, ttl: float = 20.0, interval: float = 3.0, log: Any = None) -> None:
        self.redis = redis
        self.worker_id = uuid.uuid4().hex
        self.ttl = ttl
        self.interval = interval
        self.log = log
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.beat()
        await self.redis.sadd(keys.WORKERS, self.worker_id)
        await self.reclaim()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.redis.delete(keys.worker_heartbeat(self.worker_id), keys.worker_jobs(self.worker_id))
        await self.redis.srem(keys.WORKERS, self.worker_id)

    async def beat(self) -> None:
        await self.redis.set(keys.worker_heartbeat(self.worker_id), 1, px=int(self.ttl * 1000))

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.beat()
                await self.reclaim()
            except OSError as exc:  # Redis blipped: the next beat tries again
                if self.log:
                    self.log.warning("heartbeat failed", error=str(exc))

    async def job_started(self, job_id: str) -> None:
        await self.redis.sadd(keys.worker_jobs(self.worker_id), job_id)

    async def job_ended(self, job_id: str) -> None:
        await self.redis.srem(keys.worker_jobs(self.worker_id), job_id)

    async def reclaim(self) -> list[str]:
        """Release the jobs of every worker whose heartbeat expired; return their ids."""
        released: list[str] = []
        for raw in await self.redis.smembers(keys.WORKERS):
            worker_id = raw.decode()
            if worker_id == self.worker_id or await self.redis.exists(keys.worker_heartbeat(worker_id)):
                continue
            jobs = [j.decode() for j in await self.redis.smembers(keys.worker_jobs(worker_id))]
            if jobs:
                await self.redis.delete(*[ARQ_IN_PROGRESS + j for j in jobs])
                released += jobs
            await self.redis.delete(keys.worker_jobs(worker_id))
            await self.redis.srem(keys.WORKERS, worker_id)
            if self.log and jobs:
                self.log.warning("reclaimed jobs of a dead worker", dead_worker=worker_id, jobs=jobs)
        return released
