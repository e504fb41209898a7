"""A run's session (what the agent asked, what it ran, what came back) kept in Redis for its page.

The worker that ran the agent writes it once the run ends; any web replica reads it, so it lives in Redis
rather than in a worker's data directory. Everything in it was written by the agent or its model, so it is
redacted before it is stored (no secret ever reaches Redis), each text is cut in the middle past
``TEXT_LIMIT`` characters, and a session whose JSON passes ``SIZE_LIMIT`` bytes loses steps from its middle:
the page says how many. Stored as zlib-compressed JSON, never a pickle, with the retention as its TTL.

With ``MULL_SESSION_BUCKET`` set, the same bytes go to that S3-compatible bucket instead (``bot/session_bucket.py``),
as ``sessions/<run id>.json.z``. A bucket has no TTL, so Redis keeps when each one expires: a page past it is
gone at once, and the worker deletes expired objects every hour (``worker/sessions/expiry.py``).
"""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from bot import keys
from bot.redaction import Redactor
from bot.session_bucket import BucketClient

TEXT_LIMIT = 16_000  # characters of one text (a command's output, a tool's result, the model's words)
SIZE_LIMIT = 1_000_000  # bytes of a session's JSON before compression
DECOMPRESSED_LIMIT = 4 * SIZE_LIMIT  # what a reader inflates at most: a bigger value is not a session of Mull's
FORMAT = 1


@dataclass(frozen=True)
class Step:
    """One step of a run. ``kind``: "model" (a model turn), "tool" (a tool call and its result), "command"
    (a command the agent ran, with its exit code) or "note" (something Mull observed)."""

    kind: str
    title: str
    detail: str = ""  # a tool call's arguments, a command line
    text: str = ""  # the model's words, a tool's result, a command's output
    exit_code: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    ms: int | None = None
    error: str = ""


@dataclass(frozen=True)
class Session:
    run_id: str
    stage: str  # implement, revise, critique, plan
    repo_id: int
    repo: str  # owner/name when the run ended (the page checks access by the id)
    subject: str  # "issue #12", "pull request #40"
    started: float  # epoch seconds
    seconds: float
    outcome: str  # one line: "pushed 3a1b2c4d5e6f", "budget steps (40) ran out", "verdict pass"
    steps: tuple[Step, ...] = ()
    files: tuple[str, ...] = ()  # the files the run changed
    input_tokens: int = 0
    output_tokens: int = 0
    omitted: int = 0  # steps left out of the middle to keep the session under SIZE_LIMIT
    cut: int = 0  # texts cut in the middle to TEXT_LIMIT
    extra: dict[str, str] = field(default_factory=dict)


def cut_middle(text: str, limit: int = TEXT_LIMIT) -> tuple[str, bool]:
    """``text`` with its middle left out past ``limit`` characters, saying how much went."""
    if len(text) <= limit:
        return text, False
    head, tail = text[: limit // 2], text[-(limit // 2):]
    return f"{head}\n… {len(text) - len(head) - len(tail)} characters left out …\n{tail}", True


def prepared(session: Session, redactor: Redactor, size_limit: int = SIZE_LIMIT) -> Session:
    """Redacted, each text cut to TEXT_LIMIT, and steps dropped from the middle until it fits ``size_limit``."""
    cut = 0

    def clean(text: str) -> str:
        nonlocal cut
        shown, was_cut = cut_middle(redactor.text(text))
        cut += was_cut
        return shown

    steps = tuple(replace(s, title=clean(s.title), detail=clean(s.detail), text=clean(s.text), error=clean(s.error))
                  for s in session.steps)
    files = tuple(cut_middle(redactor.text(f), 300)[0] for f in session.files[:500])
    session = replace(session, subject=redactor.text(session.subject), outcome=clean(session.outcome),
                      files=files, steps=steps, cut=session.cut + cut,
                      extra={clean(k): clean(v) for k, v in session.extra.items()})
    while len(encode(session)) > size_limit and len(steps) > 2:
        drop = max(1, len(steps) // 10)
        start = len(steps) // 2 - drop // 2
        steps = steps[:start] + steps[start + drop:]
        session = replace(session, steps=steps, omitted=session.omitted + drop)
    return session


def encode(session: Session) -> bytes:
    return json.dumps({"format": FORMAT, **asdict(session)}, separators=(",", ":")).encode()


def decode(raw: bytes) -> Session | None:
    """The session in ``raw`` (compressed), or None when it is not one this version can show."""
    try:
        inflater = zlib.decompressobj()
        data: Any = json.loads(inflater.decompress(raw, DECOMPRESSED_LIMIT))
        if inflater.unconsumed_tail or not isinstance(data, dict) or data.pop("format", None) != FORMAT:
            return None
        steps = tuple(Step(**step) for step in data.pop("steps"))
        return Session(**{**data, "steps": steps, "files": tuple(data.pop("files"))})
    except (zlib.error, ValueError, TypeError, KeyError):
        return None


async def save(redis: Any, session: Session, redactor: Redactor, retention_days: int,
               bucket: BucketClient | None = None) -> None:
    """Store the run's session for ``retention_days``, in ``bucket`` when there is one, else in Redis (the key's
    TTL); redacted and capped first."""
    body = zlib.compress(encode(prepared(session, redactor)), 6)
    if bucket is None:
        await redis.set(keys.session(session.run_id), body, ex=int(retention_days * 86400))
        return
    await bucket.put(object_name(session.run_id), body)
    await redis.zadd(keys.SESSION_EXPIRY, {session.run_id: time.time() + retention_days * 86400})


async def load(redis: Any, run_id: str, bucket: BucketClient | None = None) -> Session | None:
    if bucket is None:
        raw = await redis.get(keys.session(run_id))
        return decode(raw) if raw else None
    expires = await redis.zscore(keys.SESSION_EXPIRY, run_id)
    if expires is None or expires <= time.time():
        return None
    raw = await bucket.get(object_name(run_id))
    return decode(raw) if raw else None


EXPIRE_BATCH = 500  # bucket sessions deleted per call of ``expire``


async def expire(redis: Any, bucket: BucketClient, now: float, batch: int = EXPIRE_BATCH) -> int:
    """Delete the bucket's sessions whose retention is over (at most ``batch``); how many went."""
    due = await redis.zrangebyscore(keys.SESSION_EXPIRY, "-inf", now, start=0, num=batch)
    for raw in due:
        run_id = raw.decode() if isinstance(raw, bytes) else str(raw)
        await bucket.delete(object_name(run_id))
        await redis.zrem(keys.SESSION_EXPIRY, run_id)
    return len(due)


def object_name(run_id: str) -> str:
    return f"sessions/{run_id}.json.z"
