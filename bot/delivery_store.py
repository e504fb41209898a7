"""Durable intake: dedupe deliveries and enqueue their arq jobs, many deliveries per Redis round trip.

arq's own ``enqueue_job`` is a WATCH/MULTI transaction of several round trips; the receiver does the same
writes (job key + queue entry, in arq's format, encoded by ``bot.job_codec`` as the workers decode it) from one
Lua script, together with the delivery-id dedupe.
Concurrent requests share a round trip (group commit): each waits until the batch holding its delivery is
written, so nothing is acknowledged before Redis has it, and under load one EVALSHA carries many.

Behind Sentinel, "Redis has it" must mean a replica has it too: replication is asynchronous, and a master
killed right after answering takes its last writes with it when a replica is promoted. There the EVALSHA is
followed, in the same pipeline (still one round trip), by ``WAIT 1``: a batch no replica confirmed in time is
refused with NotReplicated, the receiver answers 503, and the redelivery finds the delivery stored (a
duplicate, acknowledged and not run again) or, if the failover lost it, stores it afresh.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from arq import constants as arq_keys
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from bot import keys
from bot.job_codec import serialize
from bot.jobs import HANDLE_DELIVERY, QUEUE, Delivery, delivery_job_id

# arq's key prefixes (arq.constants); written here because this is arq's job format, not Mull's.
ARQ_JOB_PREFIX = arq_keys.job_key_prefix
ARQ_RESULT_PREFIX = arq_keys.result_key_prefix
JOB_EXPIRES_MS = 24 * 3600 * 1000  # arq's default expires_extra_ms
MAX_BATCH = 64
REPLICA_WAIT_MS = 1000  # replicas confirm in about a network round trip; this leaves GitHub's 10 s far off

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


class NotReplicated(RedisError):
    """The master stored the batch but fewer replicas than asked confirmed it within REPLICA_WAIT_MS."""


class DeliveryStore:
    """Stores accepted deliveries as ``handle_delivery`` jobs; a repeated X-GitHub-Delivery is a no-op.

    ``replicas``: how many replicas must confirm a batch before it counts as stored (1 behind Sentinel).
    """

    def __init__(self, redis: Redis, queue: str = QUEUE, replicas: int = 0) -> None:
        self._redis = redis
        self._queue = queue
        self._replicas = replicas
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
        replies = await self._round_trip("EVALSHA", self._script.sha, script_keys, args)
        if isinstance(replies[0], NoScriptError):  # a restarted or newly promoted server: EVAL also caches it
            replies = await self._round_trip("EVAL", self._script.script, script_keys, args)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        if self._replicas and replies[1] < self._replicas:
            raise NotReplicated(f"stored on the master, but {replies[1]} of {self._replicas} replicas confirmed "
                                f"it within {REPLICA_WAIT_MS} ms")
        return replies[0]

    async def _round_trip(self, command: str, script: Any, script_keys: list[str], args: list[Any]) -> list[Any]:
        """The script, then WAIT when replicas must confirm, in one pipeline; errors come back as replies."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.execute_command(command, script, len(script_keys), *script_keys, *args)
            if self._replicas:
                pipe.execute_command("WAIT", self._replicas, REPLICA_WAIT_MS)
            return await pipe.execute(raise_on_error=False)
