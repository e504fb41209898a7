"""GitHub client behaviour at the HTTP edge (respx): bounded retries, token reuse, bot identity."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
import redis.asyncio as aioredis
import respx
from arq import Retry
from githubkit.exception import GitHubException, RequestFailed

from worker.github import failures
from worker.github.app import BoundedRetry, GitHubApp

API = "https://ghe.example.com/api/v3"


@pytest.fixture
def app(redis_url: str, app_keypair) -> GitHubApp:
    return GitHubApp(1, app_keypair[0], API, aioredis.Redis.from_url(redis_url),
                     retry=BoundedRetry(server_retries=2, backoff=0.01))


def token_route(mock: respx.MockRouter) -> respx.Route:
    return mock.post(f"{API}/app/installations/5/access_tokens").respond(
        201, json={"token": "ghs_" + "t" * 36, "expires_at": "2099-01-01T00:00:00Z"})


def test_server_errors_are_retried_then_surface(app: GitHubApp) -> None:
    async def scenario() -> None:
        with respx.mock(assert_all_called=False) as mock:
            token_route(mock)
            route = mock.get(f"{API}/repos/o/r").mock(side_effect=[httpx.Response(502), httpx.Response(503),
                                                                   httpx.Response(200, json={"id": 1})])
            gh = app.installation(5, 9)
            assert (await gh.rest.repos.async_get("o", "r")).json() == {"id": 1}
            assert route.call_count == 3
            route.mock(side_effect=None, return_value=httpx.Response(500))
            with pytest.raises(RequestFailed) as err:
                await gh.rest.repos.async_get("o", "r")
            assert failures.is_transient(err.value)
            assert isinstance(failures.retry_later(err.value, 2), Retry)

    asyncio.run(scenario())


def test_client_errors_are_not_retried_nor_transient(app: GitHubApp) -> None:
    async def scenario() -> None:
        with respx.mock(assert_all_called=False) as mock:
            token_route(mock)
            route = mock.get(f"{API}/repos/o/r").respond(404, json={"message": "Not Found"})
            with pytest.raises(RequestFailed) as err:
                await (gh := app.installation(5)).rest.repos.async_get("o", "r")
            assert gh and route.call_count == 1 and not failures.is_transient(err.value)

    asyncio.run(scenario())


def test_rate_limit_waits_briefly_in_process_and_long_waits_go_to_the_job(app: GitHubApp) -> None:
    async def scenario() -> None:
        with respx.mock(assert_all_called=False) as mock:
            token_route(mock)
            limited = httpx.Response(403, headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": "0"},
                                     json={"message": "API rate limit exceeded"})
            route = mock.get(f"{API}/repos/o/r").mock(side_effect=[limited, httpx.Response(200, json={})])
            gh = app.installation(5)
            await gh.rest.repos.async_get("o", "r")  # reset already passed: ~1 s wait
            assert route.call_count == 2
            far = httpx.Response(403, headers={"x-ratelimit-remaining": "0", "retry-after": "3600"},
                                 json={"message": "You have exceeded a secondary rate limit"})
            route.mock(side_effect=[far])
            with pytest.raises(RequestFailed) as err:
                await gh.rest.repos.async_get("o", "r")
            retry = failures.retry_later(err.value, 1)
            assert retry.defer_score and retry.defer_score >= 3_500_000

    asyncio.run(scenario())


def test_installation_tokens_are_minted_once_per_process_and_kept_in_its_memory(
        app: GitHubApp, redis_url: str, app_keypair) -> None:
    async def scenario() -> None:
        with respx.mock(assert_all_called=False) as mock:
            minted = token_route(mock)
            mock.get(f"{API}/repos/o/r").respond(200, json={})
            gh = app.installation(5, 9)
            await gh.rest.repos.async_get("o", "r")
            again = app.installation(5, 9)  # a new client of the same process (githubkit needs it referenced)
            await again.rest.repos.async_get("o", "r")
            assert await app.token(gh) == "ghs_" + "t" * 36
            assert minted.call_count == 1
            sent = mock.calls.last.request.headers["Authorization"]
            assert sent == "token ghs_" + "t" * 36
            # Another process finds nothing in Redis to reuse (tests/test_redis_data.py scans it): it mints its own.
            other_process = GitHubApp(1, app_keypair[0], API, aioredis.Redis.from_url(redis_url))
            other = other_process.installation(5, 9)
            await other.rest.repos.async_get("o", "r")
            assert minted.call_count == 2

    asyncio.run(scenario())


def test_bot_identity_is_looked_up_once(app: GitHubApp) -> None:
    async def scenario() -> None:
        with respx.mock(assert_all_called=False) as mock:
            token_route(mock)
            app_route = mock.get(f"{API}/app").respond(200, json={"slug": "mull-x", "id": 1})
            user_route = mock.get(f"{API}/users/mull-x%5Bbot%5D").respond(200, json={"id": 77, "login": "x"})
            first = await app.identity(app.installation(5))
            app._identity = None  # a fresh process reads Redis, not GitHub
            second = await app.identity(app.installation(5))
            assert first == second and first.login == "mull-x[bot]"
            assert first.email == "77+mull-x[bot]@users.noreply.github.com"
            assert app_route.call_count == 1 and user_route.call_count == 1

    asyncio.run(scenario())


def test_retry_decision_never_hands_githubkit_a_zero_wait() -> None:
    decision = BoundedRetry()
    from githubkit.exception import RateLimitExceeded

    exc = RateLimitExceeded.__new__(RateLimitExceeded)
    exc.retry_after = timedelta(0)
    option = decision(exc, 0)
    assert option.do_retry and option.retry_after and option.retry_after.total_seconds() >= 1
    assert not decision(exc, 1).do_retry


def test_jobs_starting_together_mint_one_token_per_installation_and_scope(app: GitHubApp) -> None:
    """A burst of jobs on one installation: the first to miss the cache mints, the others wait for its token."""
    async def scenario() -> None:
        with respx.mock(assert_all_called=False) as mock:
            minted = 0

            async def slow_mint(request: httpx.Request) -> httpx.Response:
                nonlocal minted
                minted += 1
                await asyncio.sleep(0.2)  # GitHub takes a while: every job asks before the first token is back
                return httpx.Response(201, json={"token": f"ghs_{minted:036d}", "expires_at": "2099-01-01T00:00:00Z"})

            mock.post(f"{API}/app/installations/5/access_tokens").mock(side_effect=slow_mint)
            route = mock.get(f"{API}/repos/o/r").respond(200, json={"id": 1})
            jobs = [app.installation(5) for _ in range(6)]  # each job opens its own client
            await asyncio.gather(*(gh.rest.repos.async_get("o", "r") for gh in jobs))
            assert minted == 1 and route.call_count == 6
            assert {call.request.headers["authorization"] for call in route.calls} == {f"token ghs_{1:036d}"}
            scoped = [app.installation(5, 9) for _ in range(3)]
            await asyncio.gather(*(gh.rest.repos.async_get("o", "r") for gh in scoped))
            assert minted == 2  # another scope (one repository) is another token, minted once too

    asyncio.run(scenario())


def test_a_failed_mint_lets_the_next_caller_mint(app: GitHubApp, monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.github import token_cache

    monkeypatch.setattr(token_cache, "WAIT_S", 0.3)

    async def scenario() -> None:
        with respx.mock(assert_all_called=False) as mock:
            mint = mock.post(f"{API}/app/installations/5/access_tokens").mock(side_effect=[
                httpx.Response(422, json={"message": "nope"}),
                httpx.Response(201, json={"token": "ghs_" + "t" * 36, "expires_at": "2099-01-01T00:00:00Z"})])
            mock.get(f"{API}/repos/o/r").respond(200, json={"id": 1})
            first, second = app.installation(5), app.installation(5)
            with pytest.raises(GitHubException):  # the mint's own failure, as githubkit wraps it
                await first.rest.repos.async_get("o", "r")
            assert (await second.rest.repos.async_get("o", "r")).json() == {"id": 1}
            assert mint.call_count == 2

    asyncio.run(scenario())
