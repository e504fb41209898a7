"""Webhook handlers and jobs in the test's own process: a person acts on the GitHub double, the delivery it
records goes through ``handle_delivery`` (routing, the job boundary, the handler), and every view is read
back: the backlog record, labels, the status comment, reactions and replies, the jobs queued. GitHub is the
double mounted through httpx.ASGITransport; Redis is real."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from doubles.e2e import MAINTAINER, READER
from doubles.fixtures import REPO
from doubles.in_process_github import InProcessGitHub, in_process_github
from doubles.services import job_ctx

from bot import keys
from bot.jobs import (
    QUEUE,
    CritiqueRequest,
    Delivery,
    ReviseRequest,
    SolveRequest,
    branch_name,
    critique_job_id,
    solve_job_id,
)
from worker import lifecycle
from worker.backlog import store as backlogs
from worker.backlog.state import ItemState
from worker.github import pull_requests
from worker.jobs.critique import critique_pr
from worker.jobs.revise import revise_pr
from worker.jobs.solve import solve_issue
from worker.lifecycle import Stage
from worker.webhooks.handlers import handle_delivery


def run(tmp_path: Path, redis_url: str, app_keypair: tuple[str, str], scenario: Any) -> Any:
    async def main() -> Any:
        async with in_process_github(tmp_path, redis_url, app_keypair) as world:
            world.double.set_permission(REPO, MAINTAINER, "write")
            world.double.set_permission(REPO, READER, "read")
            return await scenario(world)
    return asyncio.run(main())


async def act(world: InProcessGitHub, person: Callable[[], Any]) -> list[str]:
    """A person's action on the double, then Mull handling the deliveries it made; their outcomes."""
    seen = len(world.double.deliveries)
    person()
    outcomes = []
    for sent in world.double.deliveries[seen:]:
        ctx = job_ctx(world.svc, f"delivery:{sent.id}")
        outcomes.append(await handle_delivery(ctx, Delivery(sent.id, sent.event, sent.body, 0)))
    return outcomes


def status(world: InProcessGitHub, number: int) -> str:
    [body] = [c.body for c in world.double.comments(REPO, number)
              if c.user.login == world.double.bot_login and "mull:status" in c.body]
    return body


def replies(world: InProcessGitHub, number: int) -> list[str]:
    return [c.body for c in world.double.comments(REPO, number)
            if c.user.login == world.double.bot_login and "mull:status" not in c.body]


async def record(world: InProcessGitHub, number: int) -> Any:
    return await backlogs.of(world.svc, world.ref.repo_id).get(number)


async def queued_jobs(world: InProcessGitHub) -> set[str]:
    return {raw.decode() for raw in await world.svc.redis.zrange(QUEUE, 0, -1)}


def labels_of(world: InProcessGitHub, number: int) -> set[str]:
    return set(world.double.issue(REPO, number).labels)


def test_a_maintainers_label_queues_the_issue_in_every_view(tmp_path: Path, redis_url: str,
                                                             app_keypair: tuple[str, str]) -> None:
    async def scenario(world: InProcessGitHub) -> None:
        number = world.double.create_issue(REPO, "Answer 42", "", author=MAINTAINER).number
        assert await act(world, lambda: world.double.label_issue(REPO, number, "mull", MAINTAINER)) == ["queued"]
        assert '"phase":"queued"' in status(world, number) and labels_of(world, number) == {"mull", "mull:queued"}
        item = await record(world, number)
        assert item.state is ItemState.QUEUED and item.labeled_by == MAINTAINER and item.title == "Answer 42"
        assert solve_job_id(world.ref.repo_id, number) in await queued_jobs(world)
        assert await world.refresh_queued()
        # The same label again (a redelivery, or a second click) is no second run.
        assert await act(world, lambda: world.double.label_issue(REPO, number, "mull", MAINTAINER)) == [
            "already running"]

    run(tmp_path, redis_url, app_keypair, scenario)


def test_a_readers_label_is_refused_and_queues_nothing(tmp_path: Path, redis_url: str,
                                                      app_keypair: tuple[str, str]) -> None:
    async def scenario(world: InProcessGitHub) -> None:
        number = world.double.create_issue(REPO, "Please", "", author=READER).number
        assert await act(world, lambda: world.double.label_issue(REPO, number, "mull", READER)) == ["refused"]
        [reply] = replies(world, number)
        assert f"@{READER}" in reply and "write or triage access" in reply and "(yours: read)" in reply
        assert await record(world, number) is None and await queued_jobs(world) == set()

    run(tmp_path, redis_url, app_keypair, scenario)


def test_a_bad_config_is_explained_on_the_issue(tmp_path: Path, redis_url: str,
                                                app_keypair: tuple[str, str]) -> None:
    async def scenario(world: InProcessGitHub) -> None:
        world.double.commit_files(REPO, "main", {".github/mull.yml": "max_in_flight: lots\n"}, "bad config")
        number = world.double.create_issue(REPO, "Go", "", author=MAINTAINER).number
        assert await act(world, lambda: world.double.label_issue(REPO, number, "mull", MAINTAINER)) == ["bad config"]
        [reply] = replies(world, number)
        assert "max_in_flight" in reply and ".github/mull.yml" in reply
        assert await record(world, number) is None and await queued_jobs(world) == set()

    run(tmp_path, redis_url, app_keypair, scenario)


def test_unlabel_stop_and_retry_move_queued_runs(tmp_path: Path, redis_url: str,
                                                 app_keypair: tuple[str, str]) -> None:
    async def scenario(world: InProcessGitHub) -> None:
        a, b, c = (world.double.create_issue(REPO, f"Issue {n}", "", author=MAINTAINER).number for n in "abc")
        for number in (a, b, c):
            await act(world, lambda n=number: world.double.label_issue(REPO, n, "mull", MAINTAINER))
        # Two runs at a time: a and b have their jobs, c waits in line.
        assert await queued_jobs(world) >= {solve_job_id(world.ref.repo_id, a), solve_job_id(world.ref.repo_id, b)}
        assert solve_job_id(world.ref.repo_id, c) not in await queued_jobs(world)

        assert await act(world, lambda: world.double.unlabel_issue(REPO, c, "mull", MAINTAINER)) == [
            "taken out of the line"]
        assert await record(world, c) is None and "mull:queued" not in labels_of(world, c)
        assert "**Stopped** before it started" in status(world, c) and '"phase":"failed"' in status(world, c)
        issue_c = lifecycle.of(world.svc, world.gh, world.ref, c, world.double.bot_login)
        assert await issue_c.stage() is Stage.DONE

        assert await act(world, lambda: world.double.comment_as(REPO, a, "/mull stop", MAINTAINER)) == ["stop: ok"]
        item = await record(world, a)
        assert item.state is ItemState.FAILED and item.reason == f"stopped by @{MAINTAINER}"
        assert f"**Stopped** by @{MAINTAINER} before it started" in status(world, a)
        assert "mull:queued" not in labels_of(world, a)
        assert solve_job_id(world.ref.repo_id, a) not in await backlogs.of(world.svc, world.ref.repo_id).running()

        await world.svc.redis.zrem(QUEUE, solve_job_id(world.ref.repo_id, a))  # a worker drops the aborted job
        await world.svc.redis.delete(f"arq:job:{solve_job_id(world.ref.repo_id, a)}")
        assert await act(world, lambda: world.double.comment_as(REPO, a, "/mull retry", MAINTAINER)) == ["retry: ok"]
        assert (await record(world, a)).state is ItemState.QUEUED and "mull:queued" in labels_of(world, a)
        assert '"phase":"queued"' in status(world, a)

    run(tmp_path, redis_url, app_keypair, scenario)


def test_a_retry_while_the_last_run_is_only_finishing_waits_for_it_and_queues(
        tmp_path: Path, redis_url: str, app_keypair: tuple[str, str]) -> None:
    """The pull request is open but its run's job has not ended yet (it queues the critique, gives its slot back):
    a `/mull retry` or a relabel then is not "already running"; it waits for the job's end and queues a new run.
    A job still working is answered at once."""
    async def scenario(world: InProcessGitHub) -> None:
        number = world.double.create_issue(REPO, "Again", "", author=MAINTAINER).number
        await act(world, lambda: world.double.label_issue(REPO, number, "mull", MAINTAINER))
        job_id = solve_job_id(world.ref.repo_id, number)
        redis = world.svc.redis
        await redis.set(f"arq:in-progress:{job_id}", "a-worker")  # a worker took the job
        issue_run = lifecycle.of(world.svc, world.gh, world.ref, number, world.double.bot_login)
        await issue_run.move(Stage.WORKING)
        assert await act(world, lambda: world.double.comment_as(REPO, number, "/mull retry", MAINTAINER)) == [
            "retry: refused"]  # really running: refused without waiting

        await issue_run.move(Stage.DRAFT, pr=99)

        async def job_ends() -> None:  # as solve_issue's end and arq's finish_job do, a moment later
            await asyncio.sleep(0.3)
            await lifecycle.run_ended(world.svc, world.ref, number)
            await redis.delete(f"arq:in-progress:{job_id}", f"arq:job:{job_id}")
            await redis.zrem(QUEUE, job_id)

        ending = asyncio.create_task(job_ends())
        assert await act(world, lambda: world.double.comment_as(REPO, number, "/mull retry", MAINTAINER)) == [
            "retry: ok"]
        await ending
        assert await issue_run.stage() is Stage.QUEUED and job_id in await queued_jobs(world)

    run(tmp_path, redis_url, app_keypair, scenario)


def test_a_snooze_and_an_unsnooze_of_a_queued_issue(tmp_path: Path, redis_url: str,
                                                    app_keypair: tuple[str, str]) -> None:
    async def scenario(world: InProcessGitHub) -> None:
        number = world.double.create_issue(REPO, "Later", "", author=MAINTAINER).number
        await act(world, lambda: world.double.label_issue(REPO, number, "mull", MAINTAINER))
        await world.refresh_queued()
        assert await act(world, lambda: world.double.comment_as(REPO, number, "/mull snooze 3d", MAINTAINER)) == [
            "snooze: ok"]
        item = await record(world, number)
        assert item.state is ItemState.SNOOZED and item.wake_at and "mull:snoozed" in labels_of(world, number)
        assert "mull:queued" in labels_of(world, number) and await world.refresh_queued()
        assert await act(world, lambda: world.double.comment_as(REPO, number, "/mull unsnooze", MAINTAINER)) == [
            "unsnooze: ok"]
        assert (await record(world, number)).state is ItemState.QUEUED
        assert "mull:snoozed" not in labels_of(world, number) and await world.refresh_queued()

    run(tmp_path, redis_url, app_keypair, scenario)


async def mull_pull(world: InProcessGitHub, number: int) -> int:
    """Issue ``number`` as if its run had opened its draft PR (branch pushed, PR by Mull's bot)."""
    issue_run = lifecycle.of(world.svc, world.gh, world.ref, number, world.double.bot_login)
    request = SolveRequest(world.ref.installation_id, world.ref.repo_id, REPO, number, MAINTAINER, f"t{number}")
    await issue_run.queue(request, retry=True)
    await issue_run.move(Stage.WORKING)
    world.double.commit_files(REPO, branch_name(number), {"src/widgets.py": "def answer():\n    return 42\n"},
                              "Answer 42", base="main")
    async with world.gh as gh:
        pr = await pull_requests.open_or_update(gh, world.ref, branch_name(number), "main", "Answer 42",
                                                f"Fixes #{number}")
    await issue_run.move(Stage.DRAFT, pr=pr.number)
    await lifecycle.run_ended(world.svc, world.ref, number)
    return pr.number


def test_a_merged_pull_request_is_done_and_a_reopened_one_is_back(tmp_path: Path, redis_url: str,
                                                                  app_keypair: tuple[str, str]) -> None:
    async def scenario(world: InProcessGitHub) -> None:
        number = world.double.create_issue(REPO, "Answer 42", "", author=MAINTAINER).number
        pr = await mull_pull(world, number)
        for _ in range(2):
            outcomes = await act(world, lambda: world.double.mark_ready(REPO, pr, MAINTAINER))
            assert outcomes == ["marked ready by hand"] and (await record(world, number)).state is ItemState.AWAITING
            assert await backlogs.of(world.svc, world.ref.repo_id).ready() == {number}
            outcomes = await act(world, lambda: world.double.convert_to_draft(REPO, pr, MAINTAINER))
            assert outcomes == ["slot freed"] and (await record(world, number)).state is ItemState.DRAFT
            assert await backlogs.of(world.svc, world.ref.repo_id).ready() == set()
        issue_run = lifecycle.of(world.svc, world.gh, world.ref, number, world.double.bot_login)
        assert "closed" in await act(world, lambda: world.double.close_issue(REPO, pr, MAINTAINER))
        assert await record(world, number) is None and await issue_run.stage() is Stage.DONE
        assert "critique queued" in await act(world, lambda: world.double.reopen_issue(REPO, pr, MAINTAINER))
        item = await record(world, number)
        assert item.state is ItemState.DRAFT and item.reason == f"reopened by @{MAINTAINER}"
        head = world.double.branch_sha(REPO, branch_name(number))
        assert critique_job_id(world.ref.repo_id, pr, head) in await queued_jobs(world)
        await act(world, lambda: world.double.mark_ready(REPO, pr, MAINTAINER))
        assert "merged" in await act(world, lambda: world.double.merge_pull(REPO, pr, MAINTAINER))
        assert await record(world, number) is None and await issue_run.stage() is Stage.DONE
        assert '"phase":"pr-opened"' in status(world, number)  # done: the comment keeps its last word

    run(tmp_path, redis_url, app_keypair, scenario)


def test_a_solve_job_for_an_issue_that_is_done_leaves_every_view_alone(
        tmp_path: Path, redis_url: str, app_keypair: tuple[str, str]) -> None:
    async def scenario(world: InProcessGitHub) -> None:
        number = world.double.create_issue(REPO, "Closed meanwhile", "", author=MAINTAINER).number
        await act(world, lambda: world.double.label_issue(REPO, number, "mull", MAINTAINER))
        await act(world, lambda: world.double.unlabel_issue(REPO, number, "mull", MAINTAINER))
        before, seen = status(world, number), len(world.double.requests())
        request = SolveRequest(world.ref.installation_id, world.ref.repo_id, REPO, number, MAINTAINER, "late")
        ctx = job_ctx(world.svc, solve_job_id(world.ref.repo_id, number))
        assert await solve_issue(ctx, request) == "not queued"
        assert status(world, number) == before and world.writes(seen) == []
        assert await record(world, number) is None
        assert await world.svc.slots.holders(world.ref.installation_id) == []  # the boundary gave its slot back
        assert [kw for _, event, kw in world.log.lines if event == "run not started"]

    run(tmp_path, redis_url, app_keypair, scenario)


def test_a_solve_job_fails_visibly_on_a_bad_config(tmp_path: Path, redis_url: str,
                                                   app_keypair: tuple[str, str]) -> None:
    async def scenario(world: InProcessGitHub) -> None:
        number = world.double.create_issue(REPO, "Go", "", author=MAINTAINER).number
        await act(world, lambda: world.double.label_issue(REPO, number, "mull", MAINTAINER))
        world.double.commit_files(REPO, "main", {".github/mull.yml": "plan: sometimes\n"}, "bad config")
        pointer = keys.config_pointer(world.ref.repo_id)  # the cached config goes: the run reads the new one
        await world.svc.redis.delete(pointer, keys.config_fresh(pointer))
        request = SolveRequest(world.ref.installation_id, world.ref.repo_id, REPO, number, MAINTAINER, "t1")
        ctx = job_ctx(world.svc, solve_job_id(world.ref.repo_id, number))
        with pytest.raises(Exception, match="plan"):
            await solve_issue(ctx, request)
        assert '"phase":"failed"' in status(world, number) and "**Reason:**" in status(world, number)
        item = await record(world, number)
        assert item.state is ItemState.FAILED and "plan" in item.reason
        assert "mull:queued" not in labels_of(world, number) and "mull:working" not in labels_of(world, number)
        [ping] = [r for r in replies(world, number) if "Mull needs you here" in r]
        assert ping.startswith(f"@{MAINTAINER}") and "/mull retry" in ping

    run(tmp_path, redis_url, app_keypair, scenario)


def test_revise_and_critique_jobs_of_a_gone_pull_request_change_nothing(
        tmp_path: Path, redis_url: str, app_keypair: tuple[str, str]) -> None:
    async def scenario(world: InProcessGitHub) -> None:
        number = world.double.create_issue(REPO, "Answer 42", "", author=MAINTAINER).number
        pr = await mull_pull(world, number)
        head = world.double.branch_sha(REPO, branch_name(number))
        stale = CritiqueRequest(world.ref.installation_id, world.ref.repo_id, REPO, pr, "0" * 40)
        assert await critique_pr(job_ctx(world.svc, critique_job_id(world.ref.repo_id, pr, "0" * 40)),
                                 stale) == "superseded"
        await act(world, lambda: world.double.merge_pull(REPO, pr, MAINTAINER))
        seen = len(world.double.requests())
        revise = ReviseRequest(world.ref.installation_id, world.ref.repo_id, REPO, pr, "command", "go", MAINTAINER)
        assert await revise_pr(job_ctx(world.svc, "revise:1"), revise) == "not an open Mull pull request"
        current = CritiqueRequest(world.ref.installation_id, world.ref.repo_id, REPO, pr, head)
        assert await critique_pr(job_ctx(world.svc, "critique:1"), current) == "superseded"
        assert world.writes(seen) == []

    run(tmp_path, redis_url, app_keypair, scenario)


def test_a_job_of_a_suspended_installation_waits_without_spending_a_try(
        tmp_path: Path, redis_url: str, app_keypair: tuple[str, str]) -> None:
    from arq import Retry

    from worker.webhooks import installations

    async def scenario(world: InProcessGitHub) -> None:
        await installations.record(world.svc.redis, {"id": world.ref.installation_id, "account": {"login": "acme"},
                                                     "suspended_at": "2026-01-01T00:00:00Z"})
        request = SolveRequest(world.ref.installation_id, world.ref.repo_id, REPO, 1, MAINTAINER, "t")
        await world.svc.redis.set("arq:retry:solve:x", 2)
        with pytest.raises(Retry):
            await solve_issue(job_ctx(world.svc, "solve:x", 2), request)
        assert int(await world.svc.redis.get("arq:retry:solve:x")) == 1  # the try is handed back
        assert world.writes(0) == []  # nothing said anywhere: it runs once the installation is back

    run(tmp_path, redis_url, app_keypair, scenario)
