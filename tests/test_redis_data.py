"""Redis holds no secret and no code: GitHub tokens and the App's JWT live in process memory, and what Mull
keeps in Redis is JSON or msgpack, so reading it back runs nothing and writing it leaks nothing."""

from __future__ import annotations

import asyncio
import pickle
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import respx

from bot import keys
from bot.jobs import SolveRequest
from worker.agent.base import AgentResult
from worker.github.app import GitHubApp
from worker.jobs.kept_run import BranchRun, keep, kept
from worker.ops import stats

API = "https://ghe.example.com/api/v3"
TOKEN = "ghs_" + "S3cr3tT0ken" * 4


async def everything_in(redis: Any) -> list[bytes]:
    """Every key and every value of every key, whatever its type."""
    found: list[bytes] = []
    async for key in redis.scan_iter(count=500):
        found.append(key)
        kind = (await redis.type(key)).decode()
        if kind == "string":
            found.append(await redis.get(key))
        elif kind == "hash":
            for field, value in (await redis.hgetall(key)).items():
                found += [field, value]
        elif kind == "list":
            found += await redis.lrange(key, 0, -1)
        elif kind == "set":
            found += list(await redis.smembers(key))
        elif kind == "zset":
            found += [member for member, _ in await redis.zrange(key, 0, -1, withscores=True)]
        else:
            pytest.fail(f"{key!r} is a Redis {kind}, which this scan does not read: add it")
    return found


def test_no_token_and_no_jwt_is_ever_written_to_redis(redis_url: str, app_keypair) -> None:
    async def scenario() -> tuple[list[bytes], str]:
        redis = aioredis.Redis.from_url(redis_url)
        app = GitHubApp(1, app_keypair[0], API, redis)
        with respx.mock(assert_all_called=True) as mock:
            mock.post(f"{API}/app/installations/5/access_tokens").respond(
                201, json={"token": TOKEN, "expires_at": "2099-01-01T00:00:00Z"})
            app_route = mock.get(f"{API}/app").respond(200, json={"slug": "mull-x", "id": 1})
            mock.get(f"{API}/users/mull-x%5Bbot%5D").respond(200, json={"id": 77, "login": "mull-x[bot]"})
            repo_route = mock.get(f"{API}/repos/o/r").respond(200, json={"id": 9})
            gh = app.installation(5, 9)
            await gh.rest.repos.async_get("o", "r")
            await app.identity(gh)  # GET /app with the JWT, then the bot user with the token
            assert await app.token(gh) == TOKEN
            jwt = app_route.calls.last.request.headers["Authorization"].split(" ", 1)[1]
            assert repo_route.calls.last.request.headers["Authorization"] == f"token {TOKEN}"
        found = await everything_in(redis)
        await redis.aclose()
        return found, jwt

    found, jwt = asyncio.run(scenario())
    assert jwt.startswith("eyJ"), "the App authenticated with a JWT: the scan below looks for one"
    assert keys.APP_BOT.encode() in found, "the scan sees what Mull did store (the bot identity)"
    leaked = [value for value in found if TOKEN.encode() in value or b"eyJ" in value]
    assert not leaked, f"a credential is in Redis: {leaked!r}"[:300]


REQUEST = SolveRequest(1, 2, "acme/widgets", 3, "rick", "delivery-1")


def test_the_agents_saved_summary_is_json(redis_url: str) -> None:
    result = AgentResult("Renamed `helo`.", ("the docs",), "steps (40)", None, steps=40, tokens=1234,
                         blocked=(("evil.test:443", 3), ("[::1]:8080", 1)))

    key = keys.kept_run(REQUEST.repo_id, REQUEST.issue, REQUEST.trigger)

    async def scenario() -> tuple[BranchRun | None, bytes]:
        redis = aioredis.Redis.from_url(redis_url)
        await keep(redis, key, BranchRun(result=result, sha="a" * 40, base_sha=None))
        raw = await redis.get(key)
        back = await kept(redis, key)
        await redis.aclose()
        return back, raw

    back, raw = asyncio.run(scenario())
    assert back is not None and back.result == result and back.sha == "a" * 40
    assert raw.startswith(b"{") and b'"summary"' in raw


class Canary:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return open, (str(self.path), "w")


def test_a_pickle_planted_as_the_agents_summary_never_runs(redis_url: str, tmp_path: Path) -> None:
    planted = pickle.dumps(Canary(tmp_path / "canary"))
    pickle.loads(pickle.dumps(Canary(tmp_path / "control")))
    assert (tmp_path / "control").exists(), "the payload is live when unpickled"

    async def scenario() -> None:
        redis = aioredis.Redis.from_url(redis_url)
        key = keys.kept_run(REQUEST.repo_id, REQUEST.issue, REQUEST.trigger)
        await redis.set(key, planted)
        try:
            with pytest.raises(ValueError):  # not JSON: the rerun fails loudly instead of running it
                await kept(redis, key)
        finally:
            await redis.aclose()

    asyncio.run(scenario())
    assert not (tmp_path / "canary").exists()


def test_failure_reasons_kept_for_mull_status_hold_no_credential(redis_url: str) -> None:
    async def scenario() -> list[bytes]:
        redis = aioredis.Redis.from_url(redis_url)
        await stats.record_failure(redis, "critique", "acme/widgets", 4,
                                   f"model call failed: Authorization: Bearer sk-live-1234567890 at "
                                   f"https://x-access-token:{TOKEN}@ghe.example.com")
        found = await everything_in(redis)
        await redis.aclose()
        return found

    found = asyncio.run(scenario())
    assert any(b"model call failed" in value for value in found)
    assert not any(TOKEN.encode() in value or b"sk-live" in value for value in found)
