"""Durable intake: dedupe a delivery and enqueue its arq job in one Redis round trip.

arq's own ``enqueue_job`` is a WATCH/MULTI transaction of several round trips; the receiver does the same
writes (job key + queue entry, in arq's format) from a Lua script, together with the delivery-id dedupe.
"""

from __future__ import annotations

import pickle
import time

from redis.asyncio import Redis

from bot import keys
from bot.jobs import HANDLE_DELIVERY, QUEUE, Delivery, delivery_job_id

# arq's key prefixes (arq.constants); written here because this is arq's job format, not Mull's.
ARQ_JOB_PREFIX = "arq:job:"
ARQ_RESULT_PREFIX = "arq:result:"
JOB_EXPIRES_MS = 24 * 3600 * 1000  # arq's default expires_extra_ms

_ENQUEUE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) == false then return 0 end
if redis.call('EXISTS', KEYS[2], KEYS[3]) > 0 then return 0 end
redis.call('PSETEX', KEYS[2], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[5])
return 1
"""


class DeliveryStore:
    """Stores accepted deliveries as ``handle_delivery`` jobs; a repeated X-GitHub-Delivery is a no-op."""

    def __init__(self, redis: Redis, queue: str = QUEUE) -> None:
        self._redis = redis
        self._queue = queue
        self._script = redis.register_script(_ENQUEUE)

    async def put(self, delivery: Delivery) -> bool:
        """True when stored, False when this delivery id was seen before. Raises on Redis errors."""
        job_id = delivery_job_id(delivery.guid)
        now_ms = int(time.time() * 1000)
        job = pickle.dumps(
            {"t": None, "f": HANDLE_DELIVERY, "a": (delivery,), "k": {}, "et": now_ms},
            protocol=pickle.HIGHEST_PROTOCOL,
        )
        stored = await self._script(
            keys=[keys.seen(delivery.guid), ARQ_JOB_PREFIX + job_id, ARQ_RESULT_PREFIX + job_id, self._queue],
            args=[keys.SEEN_TTL_MS, JOB_EXPIRES_MS, job, now_ms, job_id],
        )
        return bool(stored)
