"""What the workers did, kept in Redis so the web process can export it (workers serve no HTTP).

One hash of counters (runs by stage and outcome, run seconds, model tokens by stage), the set of Mull pull
requests awaiting review, and a short list of recent failures for ``mull status``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from bot import keys
from bot.redaction import scrub

FAILURES_KEPT = 50


async def record_run(redis: Any, stage: str, outcome: str, seconds: float, tokens: int = 0) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hincrby(keys.STATS, f"runs|{stage}|{outcome}", 1)
        pipe.hincrbyfloat(keys.STATS, f"seconds|{stage}", seconds)
        pipe.hincrby(keys.STATS, f"count|{stage}", 1)
        if tokens:
            pipe.hincrby(keys.STATS, f"tokens|{stage}", tokens)
        await pipe.execute()


async def record_failure(redis: Any, stage: str, repo: str, number: int, reason: str, *, job: str = "",
                         fix: str = "") -> None:
    """``reason`` is scrubbed of credential-shaped text: Redis holds no secret, whatever an error message said.
    ``job`` is the arq job id, ``fix`` what a person can do about it (``mull status`` shows both)."""
    entry = json.dumps({"at": int(time.time()), "stage": stage, "repo": repo, "number": number,
                        "reason": scrub(reason), "job": job, "fix": fix})
    async with redis.pipeline(transaction=False) as pipe:
        pipe.lpush(keys.FAILURES, entry)
        pipe.ltrim(keys.FAILURES, 0, FAILURES_KEPT - 1)
        await pipe.execute()


async def awaiting_review(redis: Any, repo: str, pr: int, waiting: bool) -> None:
    """Mull PRs out of draft and open: the review backlog."""
    if waiting:
        await redis.sadd(keys.AWAITING_REVIEW, f"{repo}#{pr}")
    else:
        await redis.srem(keys.AWAITING_REVIEW, f"{repo}#{pr}")
