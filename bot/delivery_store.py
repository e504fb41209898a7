"""Durable intake: dedupe deliveries and enqueue their arq jobs, many deliveries per Redis round trip.

arq's own ``enqueue_job`` is a WATCH/MULTI transaction of several round trips; the receiver does the same
writes (job key + queue entry, in arq's format, encoded by ``bot.job_codec`` as the workers decode it) from one
Lua script, together with the delivery-id dedupe.
Concurrent requests share a round trip (group commit): each waits until the batch holding its delivery is
written, so nothing is acknowledged before Redis has it, and under load one EVALSHA carries many.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from arq import constants as arq_keys
from redis.asyncio import Redis

from bot import keys
from bot.job_codec import serialize
from bot.jobs import HANDLE_DELIVERY, QUEUE, Delivery, delivery_job_id

# arq's key prefixes (arq.constants); written here because this is arq's job format, not Mull's.
ARQ_JOB_PREFIX = arq_keys.job_key_prefix
ARQ_RESULT_PREFIX = arq_keys.result_key_prefix
JOB_EXPIRES_MS = 24 * 3600 * 1000  # arq's default expires_extra_ms
MAX_BATCH = 64

# KEYS: queue, then (seen, job, result) per delivery. ARGV: seen ttl, job ttl, score, then (job, id) each.
_ENQUEUE = """
local out = {}
local n = (#KEYS - 1) / 3
for i = 0, n - 1 do
  local seen, job, result = KEYS[2 + 3 * i], KEYS[3 + 3 * i], KEYS[4 + 3 * i]
  if redis.call('SET', seen, '1', 'NX', 'PX', ARGV[1]) == false or redis.call('EXISTS', job, result) > 0 then
    out[i + 1] = 0
  else
    redis.call('PSETEX', job, ARGV[2], ARGV[4 + 2 * i])
    redis.call('ZADD', KEYS[1], ARGV[3], ARGV[5 + 2 * i])
    out[i + 1] = 1
  end
end
return out
"""


class DeliveryStore:
    """Stores accepted deliveries as ``handle_delivery`` jobs; a repeated X-GitHub-Delivery is a no-op."""

    def __init__(self, redis: Redis, queue: str = QUEUE) -> None:
        self._queue = queue
        self._script = redis.register_script(_ENQUEUE)
        self._pending: list[tuple[Delivery, asyncio.Future[bool]]] = []
        self._writing = False

    async def put(self, delivery: Delivery) -> bool:
        """True when stored, False when this delivery id was seen before. Raises on Redis errors."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((delivery, future))
        if not self._writing:
            self._writing = True
            asyncio.get_running_loop().create_task(self._write_all())
        return await future

    async def _write_all(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                try:
                    results = await self._write(batch[i][0] for i in range(len(batch)))
                except BaseException as exc:  # noqa: BLE001 - handed to every waiting request
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue
                for (_, future), stored in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(bool(stored))
        finally:
            self._writing = False

    async def _write(self, deliveries) -> list[int]:  # type: ignore[no-untyped-def]
        now_ms = int(time.time() * 1000)
        script_keys: list[str] = [self._queue]
        args: list[Any] = [keys.SEEN_TTL_MS, JOB_EXPIRES_MS, now_ms]
        for delivery in deliveries:
            job_id = delivery_job_id(delivery.guid)
            script_keys += [keys.seen(delivery.guid), ARQ_JOB_PREFIX + job_id, ARQ_RESULT_PREFIX + job_id]
            # arq.jobs.serialize_job's shape: try, function, args, kwargs, enqueue time.
            args += [serialize({"t": None, "f": HANDLE_DELIVERY, "a": (delivery,), "k": {}, "et": now_ms}), job_id]
        return await self._script(keys=script_keys, args=args)
