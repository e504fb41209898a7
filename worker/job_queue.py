"""arq with Mull's data-only codec (``bot.job_codec``) at every place arq writes or reads a job.

arq falls back to pickle wherever no serializer is passed: a pool made with ``create_pool(settings)`` or a
``Job(job_id, redis)`` handle (whose ``info()`` and ``abort()`` read the stored job) would unpickle what is in
Redis. So pools and job handles are made here, and ``worker/app.py`` gives the worker the same codec.
"""

from __future__ import annotations

from typing import Any

from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.jobs import Job

from bot.job_codec import deserialize, serialize
from bot.jobs import QUEUE


async def connect(redis_url: str) -> ArqRedis:
    """An arq pool on ``redis_url`` that enqueues and reads jobs with Mull's codec."""
    return await create_pool(RedisSettings.from_dsn(redis_url), default_queue_name=QUEUE,
                             job_serializer=serialize, job_deserializer=deserialize)


def job(job_id: str, redis: Any) -> Job:
    """A handle on one of Mull's jobs (status, info, abort) that decodes with Mull's codec."""
    return Job(job_id, redis, _queue_name=QUEUE, _deserializer=deserialize)
