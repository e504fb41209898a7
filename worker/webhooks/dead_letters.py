"""Dead letters: deliveries whose handling failed on every try, kept so that nothing is lost silently.

GitHub got 202 for them, so GitHub will never redeliver them (``worker/webhooks/redeliver.py`` only asks for deliveries
GitHub saw fail). Once arq gives up on a ``handle_delivery`` job, the delivery would be gone; instead the job's
boundary (``worker/webhooks/handlers.py``) keeps it here with its last error, ``mull status`` shows it and
``mull retry-deliveries`` enqueues it again. A retry that succeeds removes the letter; one that fails again
replaces it with its own error. Two endings arq would keep from Mull's code are covered by the boundary too:
a handler that hangs hits Mull's own budget (shorter than arq's timeout) and fails like any error, and the
last try is kept as a letter before it starts, so a worker killed during it still leaves one.

Bounds: at most ``KEEP`` letters; at the cap the oldest failures are dropped (logged, and counted in
``mull status``). A body over ``MAX_BODY`` bytes is not kept (the letter says so, and the delivery must be
redelivered from the GitHub App's advanced settings); so the letters hold at most ``KEEP * MAX_BODY`` bytes.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bot import keys
from bot.jobs import Delivery, delivery_retry_job_id, enqueue_delivery_retry, retry_of
from bot.logs import scrub

KEEP = 100
MAX_BODY = 1024 * 1024
MAX_ERROR = 1000

# KEYS: letters, order, dropped. ARGV: guid, letter, failed at (ms), cap. Returns the guids dropped at the cap.
_RECORD = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if over <= 0 then return {} end
local old = redis.call('ZRANGE', KEYS[2], 0, over - 1)
for _, guid in ipairs(old) do
  redis.call('HDEL', KEYS[1], guid)
  redis.call('ZREM', KEYS[2], guid)
end
redis.call('INCRBY', KEYS[3], over)
return old
"""


class UnknownDeadLetter(Exception):
    def __init__(self, guid: str) -> None:
        super().__init__(f"no dead letter for delivery {guid!r}: `mull status` lists the dead letters")


@dataclass(frozen=True)
class DeadLetter:
    guid: str
    event: str
    received_at_ms: int
    failed_at: float  # epoch seconds
    error: str  # the last error, scrubbed of credential-shaped text
    retries: int  # how many times an operator retried it already
    body_bytes: int
    body: str | None  # base64; None when the body was over MAX_BODY

    def delivery(self) -> Delivery | None:
        if self.body is None:
            return None
        return Delivery(self.guid, self.event, base64.b64decode(self.body), self.received_at_ms)

    def summary(self) -> dict[str, Any]:
        """What ``mull status`` shows: everything but the body."""
        return {k: v for k, v in asdict(self).items() if k != "body"}


def _error_text(exc: BaseException) -> str:
    return scrub(f"{type(exc).__name__}: {exc}")[:MAX_ERROR]


async def record(redis: Any, delivery: Delivery, exc: BaseException, job_id: str) -> list[str]:
    """Keep ``delivery`` with its error, replacing an earlier letter of the same guid; return guids dropped."""
    now = time.time()
    letter = DeadLetter(delivery.guid, delivery.event, delivery.received_at_ms, now, _error_text(exc),
                        retry_of(job_id), len(delivery.body),
                        base64.b64encode(delivery.body).decode() if len(delivery.body) <= MAX_BODY else None)
    dropped = await redis.eval(_RECORD, 3, keys.DEAD_LETTERS, keys.DEAD_LETTER_ORDER, keys.DEAD_LETTERS_DROPPED,
                               delivery.guid, json.dumps(asdict(letter)), str(int(now * 1000)), str(KEEP))
    return [g.decode() for g in dropped]


async def forget(redis: Any, guid: str) -> None:
    async with redis.pipeline(transaction=True) as tx:
        tx.hdel(keys.DEAD_LETTERS, guid)
        tx.zrem(keys.DEAD_LETTER_ORDER, guid)
        await tx.execute()


async def get(redis: Any, guid: str) -> DeadLetter | None:
    raw = await redis.hget(keys.DEAD_LETTERS, guid)
    return DeadLetter(**json.loads(raw)) if raw else None


async def newest(redis: Any, limit: int) -> tuple[int, list[DeadLetter], int]:
    """(how many letters, the newest ``limit`` of them, how many were dropped at the cap so far)."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcard(keys.DEAD_LETTER_ORDER)
        pipe.zrevrange(keys.DEAD_LETTER_ORDER, 0, max(limit, 1) - 1)
        pipe.get(keys.DEAD_LETTERS_DROPPED)
        count, guids, dropped = await pipe.execute()
    letters = [letter for g in guids[:limit] if (letter := await get(redis, g.decode())) is not None]
    return count, letters, int(dropped or 0)


async def check(redis: Any, guids: Sequence[str] | None) -> list[DeadLetter]:
    """The letters named (all, oldest first, when ``guids`` is None); UnknownDeadLetter for the first bad guid."""
    if guids is None:
        guids = [g.decode() for g in await redis.zrange(keys.DEAD_LETTER_ORDER, 0, -1)]
    letters = []
    for guid in guids:
        letter = await get(redis, guid)
        if letter is None:
            raise UnknownDeadLetter(guid)
        letters.append(letter)
    return letters


async def retry(pool: Any, guids: Sequence[str] | None) -> list[tuple[str, str]]:
    """Enqueue the letters named (all when ``guids`` is None) as ``handle_delivery`` jobs again.

    Every guid is checked before anything is enqueued: a typo enqueues nothing. Returns (guid, what happened).
    """
    outcomes = []
    for letter in await check(pool, guids):
        delivery = letter.delivery()
        if delivery is None:
            outcomes.append((letter.guid, f"not kept ({letter.body_bytes} bytes): redeliver it from the GitHub "
                                          "App's advanced settings, then remove it with --forget"))
            continue
        job_id = delivery_retry_job_id(letter.guid, letter.retries + 1)
        queued = await enqueue_delivery_retry(pool, delivery, letter.retries + 1)
        outcomes.append((letter.guid, f"enqueued as {job_id}" if queued else f"already enqueued as {job_id}"))
    return outcomes
