"""The review backlog's other paths, with the worker in this process on a fake clock (see doubles/inprocess.py):
a Redis loss rebuilt from GitHub, digests once per window with their sinks, "needs you" pings, snoozing and
drafting pull requests that await review, and the per-reviewer cap across two repositories."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from doubles import sink_dns
from doubles.e2e import MAINTAINER
from doubles.fixtures import REPO, SEED_FILES
from doubles.inprocess import Clock, InProcessMull, in_process

from bot import keys
from worker.backlog import store as backlogs
from worker.backlog.reconcile import reconcile_if_lost
from worker.backlog.state import ItemState
from worker.backlog.sweep import sweep_backlogs
from worker.views.digests import send_digests
from worker.views.sinks import verify
from worker.webhooks import installations

pytestmark = pytest.mark.e2e

REVIEWER = "rita"
MONDAY = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
SLACK = "https://hooks.slack.test/services/T0/B0/secretpath"
SINK = "https://sink.test/mull"
SECRET = "sink-secret-value"


def config(cap: int = 2, in_flight: int = 1, sinks: bool = False) -> str:
    text = f"max_awaiting_review: {cap}\nmax_in_flight: {in_flight}\nreviewers: [{REVIEWER}]\n"
    if sinks:
        text += f"sinks:\n  slack_webhook: {SLACK}\n  json_webhook: {SINK}\n  json_secret_env: MULL_SINK_SECRET_E2E\n"
    return text


def agent(n: int, repo: str = REPO) -> list[dict]:
    path = f"tasks/{repo.replace('/', '-')}-{n}.txt"
    return [
        {"tool_calls": [{"name": "write_file", "arguments": {"path": path, "content": f"task {n}\n"}}]},
        {"tool_calls": [{"name": "finish", "arguments": {"summary": f"Task {n} done.", "not_done": []}}]},
    ]


def idle_agent() -> list[dict]:
    return [{"tool_calls": [{"name": "finish", "arguments": {"summary": "Nothing to change.", "not_done": []}}]}]


def critique(effort: int) -> list[dict]:
    return [{"tool_calls": [{"name": "submit_critique", "arguments": {
        "summary": "Adds a task file.", "effort": effort, "risks": [], "security": [], "findings": [],
        "tests": "none", "tests_note": "", "verdict": "pass"}}]}]


class World:
    """The doubles, Mull in process, and short ways to act as people."""

    def __init__(self, mull: InProcessMull, double, model, clock: Clock) -> None:
        self.mull, self.double, self.model, self.clock = mull, double, model, clock
        self.count = 0

    async def label(self, repo: str = REPO, script: list[dict] | None = None) -> int:
        n = self.count = self.count + 1
        key = f"AGENT-{repo}-{n}-END"
        self.model.script(key, script or agent(n, repo))
        self.model.script(f"tasks/{repo.replace('/', '-')}-{n}.txt", critique(effort=1 + n % 5))
        issue = self.double.create_issue(repo, f"Task {n}", key, author=MAINTAINER)
        assert self.double.label_issue(repo, issue.number, "mull", MAINTAINER) == 202
        return issue.number

    async def comment(self, number: int, body: str, repo: str = REPO) -> None:
        assert self.double.comment_as(repo, number, body, MAINTAINER) == 202
        await self.mull.drain()

    def pull_of(self, issue: int, repo: str = REPO) -> Any:
        return next(p for p in self.double.pulls(repo) if p.head_ref == f"mull/issue-{issue}")

    def ready(self, repo: str = REPO) -> list[int]:
        return sorted(p.number for p in self.double.pulls(repo) if not p.draft and not p.merged
                      and self.double.issue(repo, p.number).state == "open")

    def backlog(self, repo: str = REPO) -> backlogs.Backlog:
        return backlogs.of(self.mull.svc, self.double.state.repo(repo).id)


def run_world(tmp_path: Path, redis_url: str, double, model, app_keypair, scenario, *, files: str) -> None:
    double.set_permission(REPO, MAINTAINER, "write")
    double.set_permission(REPO, REVIEWER, "write")
    double.commit_files(REPO, "main", {**SEED_FILES, ".github/mull.yml": files}, "Mull config")
    clock = Clock(MONDAY)

    async def main() -> None:
        async with in_process(tmp_path, redis_url, double, model, app_keypair[0], clock) as mull:
            await scenario(World(mull, double, model, clock))

    asyncio.run(main())


async def snapshot(world: World) -> dict[str, Any]:
    backlog = world.backlog()
    items = sorted((i.issue, i.state.value, i.pr, i.effort, i.labeled_by, i.reviewers, i.wake_at, i.labeled_at)
                   for i in await backlog.items())
    line = [n for n in await backlog.running() if n < 10_000] + await backlog.waiting()
    return {"items": items, "line": line, "held": await backlog.held(), "ready": await backlog.ready()}


def test_redis_flushed_then_rebuilt_from_github_gives_the_same_queue(tmp_path, redis_url, github_double,
                                                                     scripted_model, app_keypair) -> None:
    async def scenario(world: World) -> None:
        for _ in range(4):
            await world.label()
        await world.mull.drain()
        assert len(world.ready()) == 2  # two await review, two are held
        held = await world.backlog().held()
        await world.comment(world.pull_of(held[0]).number, "/mull snooze 3d")
        # A run is going (its slot is taken), so the next three labeled issues wait in line.
        await world.mull.ctx["redis"].zadd(world.backlog().key("running"), {"99999": world.clock.now})
        for _ in range(3):
            world.clock.now += 60
            await world.label()
        await world.mull.drain()
        before = await snapshot(world)
        assert [s for _, s, *_ in before["items"]].count("queued") == 3
        assert [s for _, s, *_ in before["items"]].count("snoozed") == 1
        assert len(before["line"]) == 3 and len(before["ready"]) == 2
        assert len(before["held"]) == 2  # one of them snoozed

        await world.mull.ctx["redis"].flushdb()
        await installations.reconcile(world.mull.svc)
        assert await reconcile_if_lost(world.mull.svc) == 7
        assert await reconcile_if_lost(world.mull.svc) == 0  # once: the epoch is set
        after = await snapshot(world)
        assert after == before
        snoozed = next(i for i in await world.backlog().items() if i.state is ItemState.SNOOZED)
        assert await world.mull.ctx["redis"].hget(keys.snooze(world.double.state.repo(REPO).id, snoozed.pr), "at_ms")
        await world.mull.drain()  # the line moves on: the three queued issues run now the slot is free
        assert len([p for p in world.double.pulls(REPO) if not p.merged]) == 7
        assert len(world.ready()) == 2

    run_world(tmp_path, redis_url, github_double, scripted_model, app_keypair, scenario, files=config())


LAYOUT_1_KINDS = ("issue", "pr", "backlog", "snooze", "snooze-until", "digest")


def old_layout_name(key: str, repo_id: int) -> str | None:
    """The name a key of the current layout had before repository keys lived under ``mull:repo:<id>:``."""
    kind, _, tail = key.removeprefix(keys.repo_prefix(repo_id)).partition(":")
    if kind == "config":
        return f"mull:config:repo:{repo_id}" + (f":{tail}" if tail else "")
    if kind == "once":
        return f"mull:once:needs-you:{repo_id}:{tail.removeprefix('needs-you:')}"
    # Locks and stop flags keep their names; kinds added since (model spend, test runs...) had no old name.
    return f"mull:{kind}:{repo_id}:{tail}" if kind in LAYOUT_1_KINDS else None


def test_an_upgrade_from_the_old_key_layout_keeps_the_queue(tmp_path, redis_url, github_double, scripted_model,
                                                            app_keypair) -> None:
    async def scenario(world: World) -> None:
        for _ in range(3):
            await world.label()
        await world.mull.drain()
        held = await world.backlog().held()
        await world.comment(world.pull_of(held[0]).number, "/mull snooze 3d")
        await world.mull.ctx["redis"].zadd(world.backlog().key("running"), {"99999": world.clock.now})
        queued = []
        for _ in range(2):
            world.clock.now += 60
            queued.append(await world.label())
        await world.mull.drain()
        before = await snapshot(world)
        assert len(before["line"]) == 2 and [s for _, s, *_ in before["items"]].count("snoozed") == 1

        # The same Redis as a Mull of the old layout would have left it.
        redis, repo_id = world.mull.ctx["redis"], world.double.state.repo(REPO).id
        renamed = 0
        async for raw in redis.scan_iter(match=keys.repo_keys(repo_id)):
            old = old_layout_name(raw.decode(), repo_id)
            if old is not None:
                assert keys.moved_key(old) == raw.decode()
                await redis.rename(raw, old)
                renamed += 1
        await redis.delete(keys.KEY_LAYOUT)
        assert renamed > 10 and (await snapshot(world))["items"] == []

        last = queued[-1]
        await world.comment(last, "/mull queue")  # the worker that takes it starts on the old layout
        assert await snapshot(world) == before
        reply = [c.body for c in world.double.comments(REPO, last) if c.user.login == world.double.bot_login][-1]
        assert f"#{last} is queued with 1 run ahead of it." in reply
        assert await redis.hget(keys.snooze(repo_id, world.pull_of(held[0]).number), "at_ms")

    run_world(tmp_path, redis_url, github_double, scripted_model, app_keypair, scenario, files=config())


def test_digests_once_per_window_to_github_and_sinks_with_the_snoozed_three_times_question(
        tmp_path, redis_url, github_double, scripted_model, app_keypair, monkeypatch) -> None:
    sink_dns.use(monkeypatch)  # the sinks' hosts resolve to public addresses, where respx answers

    async def scenario(world: World) -> None:
        world.mull.set_environ({"MULL_SINK_SECRET_E2E": SECRET})
        with respx.mock(assert_all_called=False) as mock:
            mock.route(host="127.0.0.1").pass_through()
            slack = mock.post(sink_dns.pinned(SLACK)).mock(return_value=httpx.Response(200, text="ok"))
            sink = mock.post(sink_dns.pinned(SINK)).mock(return_value=httpx.Response(204))
            for _ in range(3):
                await world.label()
            await world.mull.drain()
            held = (await world.backlog().held())[0]
            pr = world.pull_of(held).number
            for command in ("/mull snooze 1d", "/mull unsnooze", "/mull snooze 2d", "/mull unsnooze",
                            "/mull snooze 3d"):
                await world.comment(pr, command)
            assert (await world.backlog().get(held)).snoozes == 3

            world.clock.now = (MONDAY + timedelta(hours=1, minutes=1)).timestamp()  # 09:01, in Monday's window
            sent = await asyncio.gather(send_digests(world.mull.ctx), send_digests(world.mull.ctx))
            assert sum(sent) == 2  # two workers' crons at once: one digest for rita, one question for maria
            assert await send_digests(world.mull.ctx) == 0
            board = next(i for i in world.double.issues(REPO) if i.title == "Mull review queue")
            digests = [c.body for c in world.double.comments(REPO, board.number)]
            rita = next(b for b in digests if b.startswith(f"@{REVIEWER}"))
            for number in world.ready():
                assert f"#{number}" in rita
            maria = next(b for b in digests if b.startswith(f"@{MAINTAINER}"))
            assert "snoozed 3 times" in maria
            assert slack.call_count == 2 and sink.call_count == 2
            for call in sink.calls:
                body = call.request.content
                assert verify(SECRET.encode(), body, call.request.headers["x-mull-signature-256"])
                assert json.loads(body)["type"] == "digest"
            world.clock.now = (MONDAY + timedelta(days=1, hours=1, minutes=5)).timestamp()  # Tuesday 09:05
            assert await send_digests(world.mull.ctx) == 1  # rita again; maria was asked once, not again
            world.clock.now = (MONDAY + timedelta(days=5, hours=1, minutes=5)).timestamp()  # Saturday 09:05
            assert await send_digests(world.mull.ctx) == 1  # Friday's window, late: still one
            assert await send_digests(world.mull.ctx) == 0

            failed = await world.label(script=idle_agent())  # a run that changes nothing fails: needs you now
            await world.mull.drain()
            pings = [c.body for c in world.double.comments(REPO, failed) if c.body.startswith(f"@{MAINTAINER}")]
            assert len(pings) == 1 and "/mull retry" in pings[0]
            events = [json.loads(c.request.content) for c in sink.calls]
            assert [e["type"] for e in events].count("needs_you") == 1
            assert all(SECRET not in c.request.content.decode() for c in sink.calls)

    run_world(tmp_path, redis_url, github_double, scripted_model, app_keypair, scenario,
              files=config(cap=2, in_flight=2, sinks=True))


def test_snoozing_or_drafting_a_ready_pull_request_releases_the_next(tmp_path, redis_url, github_double,
                                                                      scripted_model, app_keypair) -> None:
    async def scenario(world: World) -> None:
        for _ in range(3):
            await world.label()
        await world.mull.drain()
        first, second = world.ready()
        held_issue = (await world.backlog().held())[0]
        held_pr = world.pull_of(held_issue).number

        await world.comment(first, "/mull snooze 2d")
        assert world.ready() == sorted([second, held_pr])  # the snoozed one went back to draft
        assert "mull:awaiting-review" not in world.double.issue(REPO, first).labels
        await world.comment(first, "/mull unsnooze")
        assert world.ready() == sorted([second, held_pr])  # awake, it waits for a slot like anyone
        assert (await world.backlog().find(first)).state is ItemState.HELD

        world.double.convert_to_draft(REPO, second, MAINTAINER)  # a person takes it back
        await world.mull.drain()
        assert world.ready() == sorted([first, held_pr])
        requests = [r for r in world.double.requests("POST") if r.path.endswith("/requested_reviewers")]
        assert len(requests) == 4  # one per release: first, second, the held one, first again

        world.double.mark_ready(REPO, second, MAINTAINER)  # and marks it ready again: a person may go over
        await world.mull.drain()
        assert len(await world.backlog().ready()) == 3

    run_world(tmp_path, redis_url, github_double, scripted_model, app_keypair, scenario, files=config(in_flight=2))


def status_of(world: World, repo: str, issue: int) -> str:
    return next(c.body for c in world.double.comments(repo, issue)
                if c.user.login == world.double.bot_login and "mull:status" in c.body)


def test_the_cap_holds_per_reviewer_across_repositories(tmp_path, redis_url, github_double, scripted_model,
                                                        app_keypair) -> None:
    other = "acme/gadgets"
    github_double.create_repo(other, {**SEED_FILES, ".github/mull.yml": config(cap=2)})
    github_double.set_permission(other, MAINTAINER, "write")
    github_double.set_permission(other, REVIEWER, "write")

    async def scenario(world: World) -> None:
        await world.label()
        await world.label()
        await world.mull.drain()
        assert len(world.ready()) == 2
        gadget = await world.label(repo=other)
        await world.mull.drain()
        assert world.ready(other) == []  # rita already has two to review
        assert (await world.backlog(other).get(gadget)).state is ItemState.HELD
        # None await review in acme/gadgets: the comments say who is at their cap, with links to theirs.
        web = world.double.url
        waiting = ", ".join(f"[{REPO}#{n}]({web}/{REPO}/pull/{n})" for n in world.ready())
        at_cap = (f"its reviewer `{REVIEWER}` already has 2 Mull pull requests awaiting their review ({waiting}), "
                  "the most one person is given at a time")
        gadget_pr = world.pull_of(gadget, other).number
        assert (f"**Review queue:** finished, but {at_cap}; so #{gadget_pr} stays a draft until one of those is "
                "reviewed: next in line.") in status_of(world, other, gadget)
        assert "already await review" not in status_of(world, other, gadget)
        assert f"It stays a draft: {at_cap}." in " ".join(
            c.body for c in world.double.comments(other, gadget_pr) if c.user.login == world.double.bot_login)
        world.double.merge_pull(REPO, world.ready()[0], REVIEWER)
        await world.mull.drain()
        assert world.ready(other) == [world.pull_of(gadget, other).number]
        assert f"**Review queue:** #{gadget_pr} is ready for review" in status_of(world, other, gadget)
        assert await sweep_backlogs(world.mull.ctx) == 0  # nothing left to move
        assert await world.mull.ctx["redis"].scard(keys.reviewer_load(777, REVIEWER)) == 2

    run_world(tmp_path, redis_url, github_double, scripted_model, app_keypair, scenario, files=config(cap=2))


def test_closing_or_unlabeling_a_queued_issue_takes_it_out_of_line(tmp_path, redis_url, github_double,
                                                                     scripted_model, app_keypair) -> None:
    async def scenario(world: World) -> None:
        await world.mull.ctx["redis"].zadd(world.backlog().key("running"), {"99999": world.clock.now})  # busy
        first, second, third = [await world.label() for _ in range(3)]
        await world.mull.drain()
        assert await world.backlog().waiting() == [first, second, third]
        world.double.close_issue(REPO, first, MAINTAINER)
        world.double.unlabel_issue(REPO, second, "mull", MAINTAINER)
        await world.mull.drain()
        assert await world.backlog().waiting() == [third]
        for number, why in ((first, "closed by @maria"), (second, "@maria removed the `mull` label")):
            status = next(c.body for c in world.double.comments(REPO, number) if "mull:status" in c.body)
            assert "**Stopped** before it started" in status and why in status
            assert "mull:queued" not in world.double.issue(REPO, number).labels
            assert await world.backlog().get(number) is None
        status = next(c.body for c in world.double.comments(REPO, third) if "mull:status" in c.body)
        assert "**Queue:** next in line." in status
        assert world.double.label_issue(REPO, third, "bug", MAINTAINER) == 202
        assert world.double.unlabel_issue(REPO, third, "bug", MAINTAINER) == 202  # another label: nothing happens
        await world.mull.drain()
        assert await world.backlog().waiting() == [third]

    run_world(tmp_path, redis_url, github_double, scripted_model, app_keypair, scenario, files=config())
