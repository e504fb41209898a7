"""Durable intake: dedupe deliveries and enqueue their arq jobs, many deliveries per Redis round trip.

arq's own ``enqueue_job`` is a WATCH/MULTI transaction of several round trips; the receiver does the same
writes (job key + queue entry, in arq's format, encoded by ``bot.job_codec`` as the workers decode it) in one
pipeline: each delivery's job payload is written with a plain SET under a staging key, then one Lua script
dedupes the deliveries by X-GitHub-Delivery and renames each new one's payload into its arq job key (or
deletes it). Payloads are kept out of the script's arguments because Redis copies and hashes every byte of
an argument into Lua: a 12 KB payload costs some 30 us of Redis CPU there and 2 us as a SET's value.
Concurrent requests share a round trip (group commit): each waits until the batch holding its delivery is
written, so nothing is acknowledged before Redis has it, and under load one pipeline carries many. The pipeline
is written as RESP here and sent on one of the client's connections (its retry and Sentinel lookup included):
redis-py's pipeline packs and parses argument by argument, and a batch's script has four keys per delivery.

Behind Sentinel, "Redis has it" must mean a replica has it too: replication is asynchronous, and a master
killed right after answering takes its last writes with it when a replica is promoted. There the script is
followed, in the same pipeline (still one round trip), by ``WAIT 1``: a batch no replica confirmed in time is
refused with NotReplicated, the receiver answers 503, and the redelivery finds the delivery stored (a
duplicate, acknowledged and not run again) or, if the failover lost it, stores it afresh.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import itertools
import struct
import time
import uuid
from typing import Any

import msgpack
from arq import constants as arq_keys
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError, ResponseError

from bot import keys
from bot.job_codec import JOB, TUPLE
from bot.jobs import HANDLE_DELIVERY, QUEUE, Delivery, delivery_job_id

# arq's key prefixes (arq.constants); written here because this is arq's job format, not Mull's.
ARQ_JOB_PREFIX = arq_keys.job_key_prefix
ARQ_RESULT_PREFIX = arq_keys.result_key_prefix
JOB_EXPIRES_MS = 24 * 3600 * 1000  # arq's default expires_extra_ms
MAX_BATCH = 64
REPLICA_WAIT_MS = 1000  # replicas confirm in about a network round trip; this leaves GitHub's 10 s far off

# KEYS: queue, the new-work signal, then (seen, job, result, staged payload) per delivery. ARGV: seen ttl, job ttl,
# score, the signal's longest length - 1, then each job id. A payload that is not staged (its SET failed) leaves no
# trace, so the delivery can come again.
_ENQUEUE = """
local out = {}
local n = (#KEYS - 2) / 4
local stored = false
for i = 0, n - 1 do
  local seen, job, result, staged = KEYS[3 + 4 * i], KEYS[4 + 4 * i], KEYS[5 + 4 * i], KEYS[6 + 4 * i]
  if redis.call('EXISTS', staged) == 0 then
    out[i + 1] = -1
  elseif redis.call('SET', seen, '1', 'NX', 'PX', ARGV[1]) == false or redis.call('EXISTS', job, result) > 0 then
    redis.call('DEL', staged)
    out[i + 1] = 0
  else
    redis.call('RENAME', staged, job)
    redis.call('PEXPIRE', job, ARGV[2])
    redis.call('ZADD', KEYS[1], ARGV[3], ARGV[5 + i])
    out[i + 1] = 1
    stored = true
  end
end
if stored then
  redis.call('LPUSH', KEYS[2], '1')
  redis.call('LTRIM', KEYS[2], 0, ARGV[4])
end
return out
"""


_DELIVERY_FIELDS = tuple(field.name for field in dataclasses.fields(Delivery))


class JobEncoder:
    """The ``handle_delivery`` job of a delivery, byte for byte what ``bot.job_codec.serialize`` writes.

    In arq.jobs.serialize_job's shape (try, function, args, kwargs, enqueue time). The codec's generic walk
    packs the payload three times over (the job type, the args tuple, the job: each a msgpack ext holding the
    next), and each ``msgpack.packb`` allocates a fresh 256 KB buffer: together more than the rest of storing
    a delivery. Here the payload is packed once, with a reused packer, and the two outer layers are framed
    around it by hand.
    """

    def __init__(self) -> None:
        self._packer = msgpack.Packer(use_bin_type=True)
        pack = self._packer.pack
        # The job map is {"t": None, "f": HANDLE_DELIVERY, "a": <args>, "k": {}, "et": <enqueue ms>}.
        self._before_args = b"\x85" + pack("t") + pack(None) + pack("f") + pack(HANDLE_DELIVERY) + pack("a")
        self._before_time = pack("k") + pack({}) + pack("et")

    def encode(self, delivery: Delivery, enqueued_ms: int) -> bytes:
        fields = {name: getattr(delivery, name) for name in _DELIVERY_FIELDS}
        typed = self._packer.pack([Delivery.__name__, fields])
        args = b"\x91" + _ext_header(JOB, len(typed))  # a one-item array holding the job type's ext
        args_length = len(args) + len(typed)
        return b"".join((self._before_args, _ext_header(TUPLE, args_length), args, typed, self._before_time,
                         self._packer.pack(enqueued_ms)))


_FIXEXT = {1: 0xD4, 2: 0xD5, 4: 0xD6, 8: 0xD7, 16: 0xD8}


def _ext_header(code: int, length: int) -> bytes:
    """msgpack's header of an ext of ``length`` bytes, as msgpack's packer writes it."""
    if length in _FIXEXT:
        return struct.pack(">Bb", _FIXEXT[length], code)
    if length < 1 << 8:
        return struct.pack(">BBb", 0xC7, length, code)
    if length < 1 << 16:
        return struct.pack(">BHb", 0xC8, length, code)
    return struct.pack(">BIb", 0xC9, length, code)


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
        self._pending: list[tuple[Delivery, asyncio.Future[bool]]] = []
        self._writing = False
        self._jobs = JobEncoder()
        self._token = uuid.uuid4().hex[:12]  # staging keys: this store's token and a counter
        self._staged = itertools.count()
        self._queue_key = queue.encode()
        self._source = _ENQUEUE.encode()
        self._sha = hashlib.sha1(self._source).hexdigest().encode()  # EVALSHA's name for the script
        self._seen_ttl, self._job_ttl = str(keys.SEEN_TTL_MS).encode(), str(JOB_EXPIRES_MS).encode()
        self._staged_ttl = str(keys.STAGED_TTL_MS).encode()

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
        commands: list[bytes] = []
        script_keys: list[bytes] = [self._queue_key, _NEW_WORK]
        job_ids: list[bytes] = []
        for delivery in deliveries:
            job_id = delivery_job_id(delivery.guid)
            staged = keys.staged_delivery(self._token, next(self._staged)).encode()
            commands += _command(b"SET", staged, self._jobs.encode(delivery, now_ms), b"PX", self._staged_ttl)
            job = job_id.encode()
            script_keys += [keys.seen(delivery.guid).encode(), _JOB + job, _RESULT + job, staged]
            job_ids.append(job)
        staging = len(job_ids)
        args = [self._seen_ttl, self._job_ttl, str(now_ms).encode(), _NEW_WORK_LAST, *job_ids]
        replies = await self._round_trip([*commands, *self._script_call(b"EVALSHA", self._sha, script_keys, args)],
                                         staging)
        staging_replies, replies = replies[:staging], replies[staging:]
        if isinstance(replies[0], NoScriptError):  # a restarted or newly promoted server: EVAL also caches it
            replies = await self._round_trip(self._script_call(b"EVAL", self._source, script_keys, args), 0)
        for reply in (*staging_replies, *replies):
            if isinstance(reply, Exception):
                raise reply
        if self._replicas and replies[1] < self._replicas:
            raise NotReplicated(f"stored on the master, but {replies[1]} of {self._replicas} replicas confirmed "
                                f"it within {REPLICA_WAIT_MS} ms")
        if -1 in replies[0]:
            raise RedisError("a delivery's payload was not staged in Redis; it was not stored")
        return replies[0]

    def _script_call(self, command: bytes, script: bytes, script_keys: list[bytes], args: list[bytes]) -> list[bytes]:
        """The script's command, then WAIT when replicas must confirm, as RESP."""
        packed = _command(command, script, str(len(script_keys)).encode(), *script_keys, *args)
        if self._replicas:
            packed += _command(b"WAIT", str(self._replicas).encode(), str(REPLICA_WAIT_MS).encode())
        return packed

    async def _round_trip(self, packed: list[bytes], staging: int) -> list[Any]:
        """Send ``packed`` (the payloads' SETs, the script, then WAIT when replicas must confirm) in one write and
        read every reply; error replies come back as values. The client's own retry covers a lost connection:
        the SETs and the script's dedupe make a replay harmless (a delivery it had stored reads as a duplicate).

        RESP is written here rather than by redis-py's pipeline, whose packing and parsing, argument by argument
        (a batch's script has four keys per delivery), took most of a delivery's cost in the receiver."""
        expected = staging + 1 + (1 if self._replicas else 0)
        pool = self._redis.connection_pool
        connection = await pool.get_connection()
        try:
            async def exchange() -> list[Any]:
                await connection.send_packed_command(packed)
                replies: list[Any] = []
                for _ in range(expected):
                    try:
                        replies.append(await connection.read_response())
                    except ResponseError as exc:  # an error reply: the connection is still in step
                        replies.append(exc)
                return replies

            async def lost(error: Exception) -> None:
                await connection.disconnect()

            return await connection.retry.call_with_retry(exchange, lost)
        except BaseException:
            await connection.disconnect()  # a reply may be unread: the connection is no longer in step
            raise
        finally:
            await pool.release(connection)


_JOB, _RESULT = ARQ_JOB_PREFIX.encode(), ARQ_RESULT_PREFIX.encode()
_NEW_WORK, _NEW_WORK_LAST = keys.NEW_WORK.encode(), str(keys.NEW_WORK_MAX - 1).encode()


def _command(*args: bytes) -> list[bytes]:
    """One command in RESP, as chunks for one ``writelines`` (a payload is never copied into a bigger buffer)."""
    chunks = [b"*%d\r\n" % len(args)]
    for arg in args:
        chunks += (b"$%d\r\n" % len(arg), arg, b"\r\n")
    return chunks
