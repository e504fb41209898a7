"""arq with Mull's data-only codec (``bot.job_codec``) at every place arq writes or reads a job.

arq falls back to pickle wherever no serializer is passed: a pool made with ``create_pool(settings)`` or a
``Job(job_id, redis)`` handle (whose ``info()`` and ``abort()`` read the stored job) would unpickle what is in
Redis. So pools and job handles are made here, and ``worker/app.py`` gives the worker the same codec.

Pools are made from bot/redis_target.py rather than by arq's ``create_pool``: arq's Sentinel mode passes
neither a Sentinel password, nor timeouts, nor a retry policy to the connections it makes.

Their ``enqueue_job`` is one Lua script instead of arq's WATCH/MULTI. When the connection drops inside arq's
transaction (Redis restarting), redis-py turns the drop into a WatchError: raised from the check, it fails the
job that was enqueueing; raised from the MULTI, arq reads it as "the id was taken meanwhile" and answers None,
so the caller believes the job exists and it never does. A script is one command: redis-py retries it on a
new connection, and a retry that finds its own call's mark (the reply was lost) knows its job is written.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, NoReturn
from uuid import uuid4

from arq import Retry
from arq.connections import ArqRedis
from arq.constants import job_key_prefix, result_key_prefix, retry_key_prefix
from arq.jobs import Job, serialize_job
from arq.utils import timestamp_ms, to_ms, to_unix_ms
from redis.commands.core import AsyncScript

from bot import keys, redis_target
from bot.job_codec import deserialize, serialize
from bot.jobs import QUEUE

COMMAND_KEEP_TRYING_S = 5.0  # what a command line tool waits for Redis (arq's create_pool: 5 tries, 1 s apart)
ARQ_RETRY = retry_key_prefix  # arq's per-job try counter


async def wait_untried(redis: Any, job_id: str, seconds: float) -> NoReturn:
    """Run the job again in ``seconds``, handing back the try arq just counted: waiting (for a run slot, an
    unsuspended installation, a budget) is not a failure, and must not use up the tries kept for those."""
    await redis.decr(ARQ_RETRY + job_id)
    raise Retry(defer=seconds)


# KEYS: job, result, queue, this call's mark, the new-work signal (bot/keys.py). ARGV: the job as arq stores it,
# its expiry (ms), score, job id, the mark's expiry (ms), the signal's longest length - 1 (-1: a deferred job, no
# signal). 1 when written (or written already by this very call, whose reply was lost: its mark says so); 0 when
# arq holds the id (queued, running or its result kept).
_ENQUEUE = """
if redis.call('EXISTS', KEYS[4]) == 1 then return 1 end
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return 0 end
redis.call('PSETEX', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
redis.call('SET', KEYS[4], 1, 'PX', ARGV[5])
if tonumber(ARGV[6]) >= 0 then
  redis.call('LPUSH', KEYS[5], '1')
  redis.call('LTRIM', KEYS[5], 0, ARGV[6])
end
return 1
"""
CALL_MARK_MS = 300_000  # longer than any client's retries of one command


class MullQueue(ArqRedis):
    """arq's pool whose ``enqueue_job`` is one script (see the module's docstring); same answers as arq's."""

    _enqueue_script: AsyncScript | None = None

    async def enqueue_job(self, function: str, *args: Any, _job_id: str | None = None,
                          _queue_name: str | None = None, _defer_until: datetime | None = None,
                          _defer_by: float | timedelta | None = None, _expires: float | timedelta | None = None,
                          _job_try: int | None = None, **kwargs: Any) -> Job | None:
        if _defer_until and _defer_by:
            raise RuntimeError("use either 'defer_until' or 'defer_by' or neither, not both")
        queue = _queue_name or self.default_queue_name
        job_id = _job_id or uuid4().hex
        enqueued_ms = timestamp_ms()
        if _defer_until is not None:
            score = to_unix_ms(_defer_until)
        else:
            score = enqueued_ms + (to_ms(_defer_by) or 0)
        expires_ms = to_ms(_expires) or score - enqueued_ms + self.expires_extra_ms
        job = serialize_job(function, args, kwargs, _job_try, enqueued_ms, serializer=self.job_serializer)
        if self._enqueue_script is None:
            self._enqueue_script = self.register_script(_ENQUEUE)
        written = await self._enqueue_script(
            keys=[job_key_prefix + job_id, result_key_prefix + job_id, queue, keys.enqueue_call(uuid4().hex),
                  keys.NEW_WORK],
            args=[job, expires_ms, score, job_id, CALL_MARK_MS, keys.NEW_WORK_MAX - 1 if score <= enqueued_ms else -1])
        if not written:
            return None
        return Job(job_id, redis=self, _queue_name=queue, _deserializer=self.job_deserializer)


def pool(redis_url: str, *, keep_trying: float, **kwargs: Any) -> MullQueue:
    """An arq pool on ``redis_url`` (any form bot/redis_target.py accepts), not yet connected.

    ``keep_trying``: seconds a command retries connection errors (and timeouts) before it raises.
    """
    redis = redis_target.parse(redis_url).client(MullQueue, keep_trying=keep_trying, retry_timeouts=True, **kwargs)
    redis.job_serializer, redis.job_deserializer, redis.default_queue_name = serialize, deserialize, QUEUE
    return redis


async def connect(redis_url: str, keep_trying: float = COMMAND_KEEP_TRYING_S) -> MullQueue:
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
