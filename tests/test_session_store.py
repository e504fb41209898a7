"""Sessions in Redis: compressed, redacted, capped (texts cut in the middle, steps dropped from the middle) and
kept for the retention; anything that is not a session of this format reads as none."""

from __future__ import annotations

import asyncio
import json
import zlib

import redis
import redis.asyncio as aioredis

from bot import keys, session_store
from bot.redaction import Redactor
from bot.session_store import TEXT_LIMIT, Session, Step, cut_middle, decode, encode, prepared

TOKEN = "ghs_" + "A" * 36


def session(steps: tuple[Step, ...], run_id: str = "implement-9-x-0123456789") -> Session:
    return Session(run_id=run_id, stage="implement", repo_id=9, repo="acme/widgets", subject="issue #1",
                   started=1_800_000_000.0, seconds=12.0, outcome="pushed abc", steps=steps)


def test_round_trip_through_redis_with_its_retention_as_ttl(redis_url: str) -> None:
    original = session((Step(kind="command", title="run_command", detail="pytest", text="2 passed", exit_code=0,
                             ms=900),))

    async def go() -> Session | None:
        client = aioredis.Redis.from_url(redis_url)
        await session_store.save(client, original, Redactor(), retention_days=3)
        found = await session_store.load(client, original.run_id)
        await client.aclose()
        return found

    assert asyncio.run(go()) == original
    plain = redis.Redis.from_url(redis_url)
    assert 3 * 86400 - 5 < plain.ttl(keys.session(original.run_id)) <= 3 * 86400
    assert json.loads(zlib.decompress(plain.get(keys.session(original.run_id))))["format"] == 1


def test_secrets_are_redacted_before_storing(redis_url: str) -> None:
    leaky = session((Step(kind="tool", title=f"read {TOKEN}", detail="configured-secret-xyz",
                          text=f"token={TOKEN}\nAuthorization: Bearer abcdefghijk", error="configured-secret-xyz"),))

    async def go() -> None:
        client = aioredis.Redis.from_url(redis_url)
        await session_store.save(client, leaky, Redactor(["configured-secret-xyz"]), retention_days=1)
        await client.aclose()

    asyncio.run(go())
    raw = zlib.decompress(redis.Redis.from_url(redis_url).get(keys.session(leaky.run_id)))
    assert TOKEN.encode() not in raw and b"configured-secret-xyz" not in raw and b"abcdefghijk" not in raw
    assert raw.count(b"[redacted]") >= 4


def test_a_long_text_loses_its_middle_and_says_so() -> None:
    text = "HEAD" + "x" * (3 * TEXT_LIMIT) + "TAIL"
    shown, cut = cut_middle(text)
    assert cut and shown.startswith("HEAD") and shown.endswith("TAIL") and len(shown) < TEXT_LIMIT + 100
    assert f"{len(text) - TEXT_LIMIT} characters left out" in shown
    kept = prepared(session((Step(kind="model", title="t", text=text),)), Redactor())
    assert kept.cut == 1 and kept.steps[0].text == shown


def test_a_huge_session_keeps_its_first_and_last_steps_and_counts_what_went() -> None:
    steps = tuple(Step(kind="command", title=f"step {n}", text=f"output {n} " + "y" * 9000) for n in range(400))
    kept = prepared(session(steps), Redactor(), size_limit=200_000)
    assert len(encode(kept)) <= 200_000
    assert kept.omitted == 400 - len(kept.steps) and kept.omitted > 300
    assert kept.steps[0].title == "step 0" and kept.steps[-1].title == "step 399"


def test_what_is_not_a_session_reads_as_none() -> None:
    assert decode(b"not zlib") is None
    assert decode(zlib.compress(b"[1, 2]")) is None
    assert decode(zlib.compress(json.dumps({"format": 99, "run_id": "x"}).encode())) is None
    assert decode(zlib.compress(json.dumps({"format": 1, "steps": [{"bogus": 1}]}).encode())) is None
    bomb = zlib.compress(b"{" + b" " * (session_store.DECOMPRESSED_LIMIT + 10) + b"}")
    assert decode(bomb) is None  # never inflated past the limit
