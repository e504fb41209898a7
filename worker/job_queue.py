"""arq with Mull's data-only codec (``bot.job_codec``) at every place arq writes or reads a job.

arq falls back to pickle wherever no serializer is passed: a pool made with ``create_pool(settings)`` or a
``Job(job_id, redis)`` handle (whose ``info()`` and ``abort()`` read the stored job) would unpickle what is in
Redis. So pools and job handles are made here, and ``worker/app.py`` gives the worker the same codec.

Pools are made from bot/redis_target.py rather than by arq's ``create_pool``: arq's Sentinel mode passes
neither a Sentinel password, nor timeouts, nor a retry policy to the connections it makes.
"""

from __future__ import annotations

from typing import Any

from arq.connections import ArqRedis
from arq.jobs import Job

from bot import redis_target
from bot.job_codec import deserialize, serialize
from bot.jobs import QUEUE

COMMAND_KEEP_TRYING_S = 5.0  # what a command line tool waits for Redis (arq's create_pool: 5 tries, 1 s apart)


def pool(redis_url: str, *, keep_trying: float, **kwargs: Any) -> ArqRedis:
    """An arq pool on ``redis_url`` (any form bot/redis_target.py accepts), not yet connected.

    ``keep_trying``: seconds a command retries connection errors (and timeouts) before it raises.
    """
    redis = redis_target.parse(redis_url).client(ArqRedis, keep_trying=keep_trying, retry_timeouts=True, **kwargs)
    redis.job_serializer, redis.job_deserializer, redis.default_queue_name = serialize, deserialize, QUEUE
    return redis


async def connect(redis_url: str, keep_trying: float = COMMAND_KEEP_TRYING_S) -> ArqRedis:
    """An arq pool on ``redis_url`` that enqueues and reads jobs with Mull's codec, once Redis answers."""
    redis = pool(redis_url, keep_trying=keep_trying, socket_connect_timeout=2, socket_timeout=10)
    try:
        await redis.ping()
    except BaseException:
        await redis.aclose()
        raise
    return redis


def job(job_id: str, redis: Any) -> Job:
    """A handle on one of Mull's jobs (status, info, abort) that decodes with Mull's codec."""
    return Job(job_id, redis, _queue_name=QUEUE, _deserializer=deserialize)
