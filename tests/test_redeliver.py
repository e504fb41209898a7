"""Failed webhook deliveries are redelivered under their guid, through the GitHub double's delivery log: once
when that works, again at later runs when the redelivery fails too, and at most three times."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from doubles.fixtures import APP_ID, INSTALLATION_ID, REPO
from doubles.github import GitHubDouble, generate_app_keypair
from doubles.recording_log import RecordingLog
from doubles.server import BackgroundServer
from doubles.services import job_ctx, make_services
from githubkit import AppAuthStrategy, GitHub
from githubkit.cache import MemCacheStrategy
from githubkit.exception import RequestFailed
from githubkit_schemas.latest import models as gk
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot import keys
from worker.github.app import BoundedRetry, GitHubApp
from worker.jobs.services import services
from worker.webhooks.redeliver import redeliver, redeliver_failed


class Receiver:
    """Mull's receiver as GitHub sees it: 503 for the first request of a flaky guid, 202 otherwise."""

    def __init__(self) -> None:
        self.flaky: set[str] = set()
        self.broken: dict[str, int] = {}  # guid -> how many more requests of it get 503
        self.received: list[tuple[str, bytes]] = []
        self.server = BackgroundServer(Starlette(routes=[Route("/webhooks/github", self.hook, methods=["POST"])]))
        self.url = f"{self.server.url}/webhooks/github"

    async def hook(self, request: Request) -> JSONResponse:
        guid = request.headers["x-github-delivery"]
        first = guid not in self.guids()
        self.received.append((guid, await request.body()))
        if self.broken.get(guid, 0) > 0:
            self.broken[guid] -= 1
            return JSONResponse({}, 503)
        return JSONResponse({}, 503 if first and guid in self.flaky else 202)

    def guids(self) -> Counter[str]:
        return Counter(guid for guid, _ in self.received)


@pytest.fixture
def receiver(github_double: GitHubDouble) -> Iterator[Receiver]:
    recv = Receiver()
    recv.server.start()
    github_double.set_webhook(recv.url)
    github_double.create_issue(REPO, "Bug", "", "alice")
    yield recv
    recv.server.stop()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/webhooks/github"


def run(redis_url: str, double: GitHubDouble, private_pem: str, scenario) -> Any:
    """Run ``scenario(ctx)`` in one event loop with a fresh worker ctx (GitHubApp, Redis, log)."""
    async def main() -> Any:
        redis = aioredis.Redis.from_url(redis_url)
        github = GitHubApp(APP_ID, private_pem, double.url, redis, retry=BoundedRetry(backoff=0.01))
        try:
            return await scenario(job_ctx(make_services(redis, github=github, log=RecordingLog())))
        finally:
            await redis.aclose()

    return asyncio.run(main())


def label(double: GitHubDouble, guid: str) -> int | None:
    return double.label_issue(REPO, 1, "mull", "alice", delivery_id=guid)


def test_failed_deliveries_are_redelivered_once_under_their_guid(github_double, app_keypair, redis_url, receiver):
    receiver.flaky.add("flaky-1")
    assert label(github_double, "flaky-1") == 503
    assert label(github_double, "ok-1") == 202
    github_double.set_webhook(closed_port_url())
    assert label(github_double, "down-1") is None
    github_double.set_webhook(receiver.url)

    async def scenario(ctx: dict[str, Any]) -> tuple[int, int, int]:
        first = await redeliver_failed(ctx)
        second = await redeliver_failed(ctx)
        assert await services(ctx).redis.ttl(keys.redelivered("flaky-1")) > 2 * 24 * 3600
        assert await services(ctx).redis.hget(keys.redelivered("flaky-1"), "tries") == b"1"
        assert not await services(ctx).redis.exists(keys.redelivered("ok-1"))
        return first, second, len(services(ctx).log.lines)

    assert run(redis_url, github_double, app_keypair[0], scenario) == (2, 0, 1)
    assert receiver.guids() == {"flaky-1": 2, "ok-1": 1, "down-1": 1}
    bodies = [body for guid, body in receiver.received if guid == "flaky-1"]
    assert bodies[0] == bodies[1]
    attempts = [(d.id, d.status) for d in github_double.deliveries]
    assert attempts[-2:] == [("flaky-1", 202), ("down-1", 202)]  # oldest failure first
    assert len(github_double.requests("POST", r"/app/hook/deliveries/\d+/attempts$")) == 2


def test_a_redelivery_that_fails_too_is_redelivered_at_a_later_run(github_double, app_keypair, redis_url,
                                                                    receiver):
    """Redis still down when the redelivery arrives: the next run finds the guid failed again and tries again,
    not sooner than half a period after the last try."""
    receiver.broken["late-1"] = 2  # the first attempt and the first redelivery fail
    assert label(github_double, "late-1") == 503

    async def scenario(ctx: dict[str, Any]) -> list[int]:
        svc = services(ctx)
        args = (svc.github, svc.redis, svc.log)
        counts = [await redeliver(*args, retry_after=0.5)]
        github_double.hooks.wait_idle()
        counts.append(await redeliver(*args, retry_after=0.5))  # too soon: left for the next run
        await asyncio.sleep(0.6)
        counts.append(await redeliver(*args, retry_after=0.5))
        github_double.hooks.wait_idle()
        await asyncio.sleep(0.6)
        counts.append(await redeliver(*args, retry_after=0.5))  # it went through: nothing left
        assert await services(ctx).redis.hget(keys.redelivered("late-1"), "tries") == b"2"
        return counts

    assert run(redis_url, github_double, app_keypair[0], scenario) == [1, 0, 1, 0]
    assert [(d.id, d.status) for d in github_double.deliveries] == [("late-1", 503)] * 2 + [("late-1", 202)]


def test_a_delivery_is_redelivered_three_times_at_most_then_given_up_loudly(github_double, app_keypair, redis_url,
                                                                           receiver):
    receiver.broken["lost-1"] = 100
    assert label(github_double, "lost-1") == 503

    async def scenario(ctx: dict[str, Any]) -> list[int]:
        counts = []
        for _ in range(5):
            svc = services(ctx)
            counts.append(await redeliver(svc.github, svc.redis, svc.log, retry_after=0.2))
            github_double.hooks.wait_idle()
            await asyncio.sleep(0.25)
        errors = [(event, kw) for level, event, kw in services(ctx).log.lines if level == "error"]
        assert len(errors) == 1 and "given up" in errors[0][0] and errors[0][1]["guid"] == "lost-1"
        return counts

    assert run(redis_url, github_double, app_keypair[0], scenario) == [1, 1, 1, 0, 0]
    assert receiver.guids() == {"lost-1": 4}  # the delivery and three redeliveries


def test_pages_are_followed_by_cursor_and_caps_carry_over(github_double, app_keypair, redis_url, receiver):
    guids = [f"g{i}" for i in range(7)]
    receiver.flaky.update(guids[::2])
    for guid in guids:
        label(github_double, guid)

    async def scenario(ctx: dict[str, Any]) -> list[int]:
        args = (services(ctx).github, services(ctx).redis, services(ctx).log)
        return [await redeliver(*args, per_page=2, max_redeliveries=3) for _ in range(3)]

    assert run(redis_url, github_double, app_keypair[0], scenario) == [3, 1, 0]
    assert receiver.guids() == {g: 2 if g in receiver.flaky else 1 for g in guids}
    assert [d.id for d in github_double.deliveries[7:]] == ["g0", "g2", "g4", "g6"]
    listed = github_double.requests("GET", r"^/app/hook/deliveries$")
    assert any("cursor=v1_" in r.query for r in listed) and len(listed) >= 8


def test_a_backlog_larger_than_a_run_is_finished_by_later_runs(github_double, app_keypair, redis_url, receiver):
    guids = [f"b{i}" for i in range(8)]
    receiver.flaky.update(guids)
    for guid in guids:
        label(github_double, guid)

    async def scenario(ctx: dict[str, Any]) -> list[int]:
        args = (services(ctx).github, services(ctx).redis, services(ctx).log)
        counts = [await redeliver(*args, per_page=2, max_items=3) for _ in range(6)]
        assert any("scan capped" in event for _, event, _ in services(ctx).log.lines)
        assert not await services(ctx).redis.hexists(keys.REDELIVER, "cursor")
        return counts

    counts = run(redis_url, github_double, app_keypair[0], scenario)
    assert counts[:2] == [4, 4] and sum(counts) == 8
    assert receiver.guids() == {g: 2 for g in guids}


def test_github_errors_are_logged_and_the_next_run_catches_up(github_double, app_keypair, redis_url, receiver):
    receiver.flaky.add("flaky-1")
    label(github_double, "flaky-1")
    github_double.fail_next("GET", r"^/app/hook/deliveries$", 503, times=4)  # the first try and 3 retries

    async def scenario(ctx: dict[str, Any]) -> list[int]:
        counts = [await redeliver_failed(ctx)]
        github_double.fail_next("POST", r"/attempts$", 502, times=4)
        counts.append(await redeliver_failed(ctx))
        assert not await services(ctx).redis.exists(keys.redelivered("flaky-1"))  # released for the next run
        counts.append(await redeliver_failed(ctx))
        errors = [(event, kw["status"]) for level, event, kw in services(ctx).log.lines if level == "error"]
        assert [status for _, status in errors] == [503, 502]
        assert "could not list" in errors[0][0]
        return counts

    assert run(redis_url, github_double, app_keypair[0], scenario) == [0, 0, 1]
    assert receiver.guids() == {"flaky-1": 2}


def test_a_wrong_app_key_logs_one_line_and_returns_zero(github_double, redis_url, receiver):
    receiver.flaky.add("flaky-1")
    label(github_double, "flaky-1")
    wrong_pem = generate_app_keypair()[0]  # a valid key, not the App's

    async def scenario(ctx: dict[str, Any]) -> tuple[int, list]:
        return await redeliver_failed(ctx), services(ctx).log.lines

    count, lines = run(redis_url, github_double, wrong_pem, scenario)
    assert count == 0 and len(lines) == 1
    level, event, kw = lines[0]
    assert level == "error" and kw["status"] == 401 and "private key" in kw["error"]
    assert receiver.guids() == {"flaky-1": 1}


# -- the double's delivery log, as githubkit reads it ---------------------------------------------


def test_double_lists_gets_and_redelivers_like_github(github_double, app_keypair, receiver):
    receiver.flaky.add("flaky-1")
    label(github_double, "flaky-1")
    github_double.set_webhook(closed_port_url())
    label(github_double, "down-1")
    github_double.set_webhook(receiver.url)
    token = github_double.mint_token(INSTALLATION_ID)
    with httpx.Client(base_url=github_double.url, headers={"Authorization": f"token {token}"}, verify=False,
                      trust_env=False) as http:
        assert http.post(f"/repos/{REPO}/issues/1/comments", json={"body": "On it"}).status_code == 201
        assert http.get("/app/hook/deliveries").status_code == 401  # the App's JWT only
    (emitted,) = github_double.wait_for_delivery("issue_comment", "created")

    async def scenario() -> None:
        gh = GitHub(AppAuthStrategy(APP_ID, app_keypair[0]), base_url=github_double.url, auto_retry=False,
                    http_cache=False, cache_strategy=MemCacheStrategy())
        async with gh:
            apps = gh.rest.apps
            page = await apps.async_list_webhook_deliveries(per_page=2)
            items = page.parsed_data  # validated against githubkit's models
            assert [(i.id, i.guid, i.status_code, i.status) for i in items] == [
                (3, emitted.id, 202, "OK"), (2, "down-1", 0, "failed to connect")]
            assert items[0].event == "issue_comment" and items[0].installation_id == INSTALLATION_ID
            cursor = httpx.URL(page.raw_response.links["next"]["url"]).params["cursor"]
            rest = (await apps.async_list_webhook_deliveries(per_page=2, cursor=cursor)).parsed_data
            assert [(i.id, i.status_code, i.status, i.redelivery) for i in rest] == [
                (1, 503, "Invalid HTTP Response: 503", False)]
            failed = (await apps.async_list_webhook_deliveries(status="failure")).parsed_data
            assert [i.guid for i in failed] == ["down-1", "flaky-1"]

            assert (await apps.async_redeliver_webhook_delivery(1)).status_code == 202
            again = (await apps.async_get_webhook_delivery(4)).parsed_data
            assert isinstance(again, gk.HookDelivery)
            assert (again.guid, again.redelivery, again.status_code) == ("flaky-1", True, 202)
            assert again.request.headers and again.request.headers.model_dump()["X-GitHub-Delivery"] == "flaky-1"
            with pytest.raises(RequestFailed) as missing:
                await apps.async_redeliver_webhook_delivery(99)
            assert missing.value.response.status_code == 404

    asyncio.run(scenario())
    assert receiver.guids() == {"flaky-1": 2, emitted.id: 1}
