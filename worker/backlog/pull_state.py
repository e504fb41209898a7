"""Per-pull-request counters that keep automatic work bounded: fix rounds, CI fix attempts, review quiet,
and the requests (mentions of Mull) the next review revision takes up."""

from __future__ import annotations

import time
from typing import Any

from bot import keys

FIX_ROUNDS = "fix_rounds"
CI_ATTEMPTS = "ci_attempts"
LAST_REVIEW = "last_review_at"
REQUESTS = "requests"  # mentions of Mull waiting for the next review revision, separated by REQUEST_SEPARATOR
REQUEST_SEPARATOR = "\n\n"
REQUESTS_LIMIT = 16_000  # characters kept for one revision; later requests wait for the next
TTL = 90 * 24 * 3600


class PullState:
    def __init__(self, redis: Any, repo_id: int, pr: int) -> None:
        self.redis = redis
        self.key = keys.pull_state(repo_id, pr)

    async def count(self, field: str) -> int:
        raw = await self.redis.hget(self.key, field)
        return int(raw) if raw else 0

    async def spend(self, field: str, limit: int) -> int | None:
        """Take one more of a bounded allowance: the new count, or None when ``limit`` is used up."""
        used = await self.redis.hincrby(self.key, field, 1)
        await self.redis.expire(self.key, TTL)
        if used > limit:
            await self.redis.hincrby(self.key, field, -1)
            return None
        return int(used)

    async def touch_review(self) -> None:
        await self.redis.hset(self.key, LAST_REVIEW, str(time.time()))
        await self.redis.expire(self.key, TTL)

    async def last_review(self) -> float:
        raw = await self.redis.hget(self.key, LAST_REVIEW)
        return float(raw) if raw else 0.0

    async def add_request(self, text: str) -> None:
        """A request for the next review revision; a burst of them is read by one revision."""
        current = await self.redis.hget(self.key, REQUESTS)
        joined = (current.decode() + REQUEST_SEPARATOR if current else "") + text
        await self.redis.hset(self.key, REQUESTS, joined[:REQUESTS_LIMIT])
        await self.redis.expire(self.key, TTL)

    async def take_requests(self) -> str:
        """The waiting requests, which are then gone: the revision that reads them addresses them."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hget(self.key, REQUESTS)
            pipe.hdel(self.key, REQUESTS)
            raw, _ = await pipe.execute()
        return raw.decode() if raw else ""
