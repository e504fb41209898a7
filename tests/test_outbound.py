"""One redactor for outbound text: secrets and token shapes never reach GitHub or a sink, whoever wrote them."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import respx
from doubles import sink_dns
from doubles.model_server import ScriptedModel
from doubles.recording_log import RecordingLog
from doubles.services import make_services

from bot import keys
from bot.jobs import RepoRef
from bot.redaction import REDACTED, Redactor
from worker.agent.base import AgentResult
from worker.backlog.state import Item, ItemState
from worker.github.app import GitHubApp
from worker.github.pull_requests import open_or_update, render_body
from worker.jobs.plan import PlanFailed, make_plan
from worker.views.defuse import ZWJ
from worker.views.needs_you import needs_you

API = "https://ghe.example.com/api/v3"
SECRET = "llm-key-0123456789"
GHS = "ghs_" + "a" * 36
SLACK = "https://hooks.slack.example/services/T0/B0/x"


def token_route(mock: respx.MockRouter) -> None:
    mock.post(f"{API}/app/installations/5/access_tokens").respond(
        201, json={"token": "ghs_" + "t" * 36, "expires_at": "2099-01-01T00:00:00Z"})


def app(redis_url: str, keypair: Any) -> GitHubApp:
    return GitHubApp(1, keypair[0], API, aioredis.Redis.from_url(redis_url), redactor=Redactor([SECRET]))


def test_a_secret_and_a_token_in_the_agents_summary_never_reach_the_pr_body(redis_url: str, app_keypair) -> None:
    result = AgentResult(summary=f"Used {SECRET} and {GHS} to test.", not_done=(f"push with {GHS}",),
                         budget_tripped=None, error=None, steps=1, tokens=1)
    body = render_body(3, result, 1, "ann")
    assert SECRET in body  # render_body defuses; the redactor sits where every write to GitHub passes

    async def scenario() -> bytes:
        with respx.mock(assert_all_called=True) as mock:
            token_route(mock)
            mock.get(f"{API}/repos/o/r/pulls").respond(200, json=[])
            created = mock.post(f"{API}/repos/o/r/pulls").respond(
                201, json={"number": 4, "html_url": "https://github.com/o/r/pull/4"})
            pull = await open_or_update(app(redis_url, app_keypair).installation(5, 9), RepoRef(5, 9, "o", "r"),
                                        "mull/issue-3", "main", "Title", body)
            assert pull.number == 4
            return created.calls.last.request.content

    sent = json.loads(asyncio.run(scenario()))
    assert SECRET not in sent["body"] and GHS not in sent["body"] and REDACTED in sent["body"]
    assert sent["body"].startswith("Fixes #3")


def test_a_key_echoed_by_the_plan_endpoint_never_reaches_a_github_comment(redis_url: str, app_keypair) -> None:
    with ScriptedModel() as model:
        model.script("PLAN-ECHO", [{"echo_headers": True, "status": 400}])
        with pytest.raises(PlanFailed) as err:
            asyncio.run(make_plan(model.url, SECRET, "m", "PLAN-ECHO"))
    assert SECRET not in str(err.value) and "plan model failed" in str(err.value)

    async def scenario() -> bytes:  # and if an error still carried it, the comment would not
        with respx.mock(assert_all_called=True) as mock:
            token_route(mock)
            comment = mock.post(f"{API}/repos/o/r/issues/3/comments").respond(201, json={"id": 1})
            gh = app(redis_url, app_keypair).installation(5, 9)
            await gh.rest.issues.async_create_comment("o", "r", 3, body=f"**Reason:** Bearer {SECRET}")
            return comment.calls.last.request.content

    assert SECRET not in asyncio.run(scenario()).decode()


class _Issues:
    def __init__(self) -> None:
        self.bodies: list[str] = []

    async def async_create_comment(self, owner: str, name: str, number: int, body: str) -> None:
        self.bodies.append(body)


def test_needs_you_defuses_the_detail_for_github_and_slack_and_redacts_it(redis_url: str,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    sink_dns.use(monkeypatch)
    detail = f"the run failed: <!channel> @octocat closes #1 with {SECRET}"
    issues = _Issues()

    async def scenario() -> Any:
        redis = aioredis.Redis.from_url(redis_url)
        await redis.hset(keys.backlog(1, "meta"), "notify", json.dumps({"sinks": {"slack_webhook": SLACK}}))
        async with httpx.AsyncClient() as http:
            ctx = make_services(redis, http=http, log=RecordingLog(), environ={},
                                settings=SimpleNamespace(github_url="https://api.github.com", sink_allowed=()),
                                redactor=Redactor([SECRET]))
            with respx.mock(assert_all_called=True) as mock:
                slack = mock.post(sink_dns.pinned(SLACK)).respond(200, text="ok")
                gh = SimpleNamespace(rest=SimpleNamespace(issues=issues))
                await needs_you(ctx, gh, RepoRef(5, 1, "o", "r"), Item(7, "t", ItemState.FAILED, labeled_by="ann"),  # type: ignore[arg-type]
                                "failed", detail)
                sent = json.loads(slack.calls.last.request.content)["text"]
        await redis.aclose()
        return sent

    sent = asyncio.run(scenario())
    assert "<!channel>" not in sent and "&lt;!channel&gt;" in sent and "@" + ZWJ + "octocat" in sent
    assert SECRET not in sent
    [comment] = issues.bodies
    assert comment.startswith("@ann Mull needs you here:") and "<!channel>" not in comment
    assert "@octocat" not in comment and "closes #1" not in comment
