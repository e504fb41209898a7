"""The issue lifecycle: every legal move writes each view (backlog record, state label, status comment,
needs-you, dashboard refresh) once and consistently; an illegal one raises and writes nothing. In process, on
a real Redis, against the GitHub double mounted through httpx.ASGITransport."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from doubles.e2e import MAINTAINER
from doubles.fixtures import REPO
from doubles.in_process_github import InProcessGitHub, in_process_github

from bot.jobs import SolveRequest
from worker import lifecycle
from worker.backlog import store as backlogs
from worker.backlog.state import ItemState
from worker.backlog.store import Limits
from worker.lifecycle import NEXT, Alert, IllegalMove, Stage, check, label_of, phase_of
from worker.views import labels
from worker.views.status_comment import Phase

# How to bring a freshly queued issue to each stage, through the lifecycle itself.
PATHS: dict[Stage, list[Stage]] = {
    Stage.QUEUED: [],
    Stage.WORKING: [Stage.WORKING],
    Stage.WAITING: [Stage.WORKING, Stage.WAITING],
    Stage.DRAFT: [Stage.WORKING, Stage.DRAFT],
    Stage.HELD: [Stage.WORKING, Stage.DRAFT, Stage.HELD],
    Stage.AWAITING: [Stage.WORKING, Stage.DRAFT, Stage.AWAITING],
    Stage.FAILED: [Stage.WORKING, Stage.FAILED],
    Stage.DONE: [Stage.DONE],
}
ITEM_STATES = {Stage.AWAITING: ItemState.AWAITING, **{s: ItemState(s.value) for s in Stage
                                                        if s not in (Stage.AWAITING, Stage.DONE)}}
LEGAL = [(before, after) for before in PATHS for after in sorted(NEXT[before])]
ILLEGAL = [(before, after) for before in PATHS for after in Stage if after not in NEXT[before]]


def test_done_runs_again_only_through_a_retry() -> None:
    with pytest.raises(IllegalMove, match=r"issue #7 cannot move from done to working: .*retry"):
        check(7, Stage.DONE, Stage.WORKING)
    check(7, Stage.DONE, Stage.WORKING, retry=True)
    check(7, Stage.DONE, Stage.QUEUED, retry=True)


def test_a_failed_pull_request_never_goes_straight_to_review() -> None:
    for retry in (False, True):
        with pytest.raises(IllegalMove, match="goes back to draft .* before it awaits review"):
            check(7, Stage.FAILED, Stage.AWAITING, retry=retry)
    check(7, Stage.FAILED, Stage.DRAFT, retry=True)  # a new critique, or a person: then it may go on


@pytest.mark.parametrize(("before", "after"), [
    (Stage.WAITING, Stage.DRAFT), (Stage.QUEUED, Stage.AWAITING), (Stage.DRAFT, Stage.WORKING),
    (Stage.HELD, Stage.QUEUED), (Stage.FAILED, Stage.HELD), (Stage.DONE, Stage.FAILED)])
def test_moves_that_skip_a_stage_are_refused_naming_both_ends(before: Stage, after: Stage) -> None:
    with pytest.raises(IllegalMove) as err:
        check(3, before, after)
    assert f"from {before} to {after}" in str(err.value) and (err.value.before, err.value.after) == (before, after)


def test_mull_learning_of_an_issue_midway_may_record_it_anywhere() -> None:
    for after in Stage:
        check(3, None, after)


def status_of(world: InProcessGitHub, number: int) -> tuple[Phase | None, str]:
    bodies = [c.body for c in world.double.comments(REPO, number)
              if c.user.login == world.double.bot_login and "mull:status" in c.body]
    assert len(bodies) <= 1, "one status comment per issue"
    if not bodies:
        return None, ""
    phase = re.search(r'"phase":"([a-z-]+)"', bodies[0])
    return (Phase(phase.group(1)) if phase else None), bodies[0]


def state_labels(world: InProcessGitHub, number: int) -> set[str]:
    return set(world.double.issue(REPO, number).labels) & set(labels.STATE_LABELS)


async def issue_at(world: InProcessGitHub, gh: Any, stage: Stage, title: str) -> lifecycle.IssueLifecycle:
    """A new issue, queued by the maintainer and moved along ``PATHS[stage]``."""
    number = world.double.create_issue(REPO, title, "", author=MAINTAINER).number
    issue_run = lifecycle.of(world.svc, gh, world.ref, number, world.double.bot_login)
    request = SolveRequest(world.ref.installation_id, world.ref.repo_id, REPO, number, MAINTAINER, f"t-{number}")
    assert await issue_run.queue(request, retry=True, title=title)
    for step in PATHS[stage]:
        await issue_run.move(step, **({"pr": 900 + number} if step is Stage.DRAFT else {}))
    if stage not in (Stage.QUEUED, Stage.WORKING):  # its solve job ended
        await lifecycle.run_ended(world.svc, world.ref, number)
    await world.refresh_queued()
    return issue_run


async def go(world: InProcessGitHub, issue_run: lifecycle.IssueLifecycle, after: Stage, **record: Any) -> Any:
    """``move``, or for the queued stage ``queue`` (a run to put in line) as `/mull go` does."""
    if after is not Stage.QUEUED:
        return await issue_run.move(after, **record)
    request = SolveRequest(world.ref.installation_id, world.ref.repo_id, REPO, issue_run.issue, MAINTAINER, "go")
    return await issue_run.queue(request, retry=False, title="", **record)


def run(tmp_path: Path, redis_url: str, app_keypair: tuple[str, str], scenario: Any) -> Any:
    async def main() -> Any:
        async with in_process_github(tmp_path, redis_url, app_keypair) as world:
            # Every queued issue gets its run at once: the line's order is worker/backlog/store.py's to test.
            await backlogs.of(world.svc, world.ref.repo_id).remember_repo(
                world.ref.installation_id, REPO, Limits(max_in_flight=1000))
            async with world.gh as gh:
                return await scenario(world, gh)
    return asyncio.run(main())


def test_every_legal_move_writes_each_view_once(tmp_path: Path, redis_url: str,
                                                app_keypair: tuple[str, str]) -> None:
    async def scenario(world: InProcessGitHub, gh: Any) -> None:
        for before, after in LEGAL:
            issue_run = await issue_at(world, gh, before, f"{before} to {after}")
            what = f"{before} -> {after}"
            phase_before, _ = status_of(world, issue_run.issue)
            labels_before = state_labels(world, issue_run.issue)
            seen = len(world.double.requests())
            if after is Stage.QUEUED:
                queued = await go(world, issue_run, after)
                assert queued is (before is not Stage.QUEUED), what  # already in line: nothing to do
                if not queued:
                    assert world.writes(seen) == [] and not await world.refresh_queued()
                    continue
            else:
                moved = await go(world, issue_run, after, reason=f"test {after}")

            assert await issue_run.stage() is after or after is Stage.SNOOZED and await issue_run.stage() is before
            record = await issue_run.backlog.get(issue_run.issue)
            if after is Stage.DONE:
                assert moved is None and record is None, what
            else:
                assert record is not None and record.state is ITEM_STATES[after], what
                assert after is Stage.QUEUED or record == moved and record.reason == f"test {after}", what
            expected_label = labels_before if after is Stage.SNOOZED else \
                ({label_of(after)} if label_of(after) else set())
            assert state_labels(world, issue_run.issue) == expected_label, what
            phase = phase_of(before, after)
            assert status_of(world, issue_run.issue)[0] == (phase or phase_before), what
            assert await world.refresh_queued(), f"{what}: the dashboard is asked to refresh"

            writes = world.writes(seen)
            status_writes = [w for w in writes if re.search(r"/issues/(comments/\d+|\d+/comments)$", w)]
            label_adds = [w for w in writes if w.startswith("POST") and w.endswith("/labels")]
            label_removals = [w for w in writes if w.startswith("DELETE") and "/labels/" in w]
            assert len(status_writes) == (0 if phase in (None, phase_before) else 1), (what, writes)
            assert len(label_adds) == (1 if after is not Stage.SNOOZED and label_of(after)
                                       and label_of(after) != label_of(before) else 0), (what, writes)
            assert len(label_removals) <= len(labels.STATE_LABELS), (what, writes)  # one pass of labels.move
            assert not [w for w in writes if w not in status_writes + label_adds + label_removals], (what, writes)

    run(tmp_path, redis_url, app_keypair, scenario)


def test_an_illegal_move_raises_and_changes_no_view(tmp_path: Path, redis_url: str,
                                                    app_keypair: tuple[str, str]) -> None:
    async def scenario(world: InProcessGitHub, gh: Any) -> None:
        for before, after in ILLEGAL:
            issue_run = await issue_at(world, gh, before, f"{before} to {after}")
            record = await issue_run.backlog.get(issue_run.issue)
            status = status_of(world, issue_run.issue)
            seen = len(world.double.requests())
            with pytest.raises(IllegalMove, match=f"from {before} to {after}"):
                await go(world, issue_run, after)
            assert await issue_run.backlog.get(issue_run.issue) == record
            assert status_of(world, issue_run.issue) == status
            assert world.writes(seen) == [] and not await world.refresh_queued(), f"{before} -> {after}"

    run(tmp_path, redis_url, app_keypair, scenario)


def test_a_failed_run_alerts_its_requester_once_and_a_retry_queues_it_again(
        tmp_path: Path, redis_url: str, app_keypair: tuple[str, str]) -> None:
    async def scenario(world: InProcessGitHub, gh: Any) -> None:
        issue_run = await issue_at(world, gh, Stage.WORKING, "Flaky")
        alert = Alert("failed", "the run failed: the model went away. Comment `/mull retry` to run it again.")
        for _ in range(2):  # the job's boundary may report the same failure twice: one notification
            await issue_run.move(Stage.FAILED, note="**Reason:** the model went away", reason="model", alert=alert)
        pings = [c.body for c in world.double.comments(REPO, issue_run.issue) if "Mull needs you here" in c.body]
        assert pings == [f"@{MAINTAINER} Mull needs you here: {alert.detail}"]
        phase, body = status_of(world, issue_run.issue)
        assert phase is Phase.FAILED and "the model went away" in body and "/mull retry" in body
        await lifecycle.run_ended(world.svc, world.ref, issue_run.issue)  # its solve job ends

        again = lifecycle.of(world.svc, gh, world.ref, issue_run.issue, world.double.bot_login)
        request = SolveRequest(world.ref.installation_id, world.ref.repo_id, REPO, issue_run.issue, MAINTAINER, "r2")
        with pytest.raises(IllegalMove, match="only through a retry"):
            await again.queue(request, retry=False)
        assert await again.queue(request, retry=True)
        assert not await again.queue(request, retry=True)  # already in line: a second trigger is a no-op
        assert status_of(world, issue_run.issue)[0] is Phase.QUEUED
        assert state_labels(world, issue_run.issue) == {labels.QUEUED}

    run(tmp_path, redis_url, app_keypair, scenario)


def test_news_of_a_pull_request_yields_to_a_new_run_of_its_issue(
        tmp_path: Path, redis_url: str, app_keypair: tuple[str, str]) -> None:
    async def scenario(world: InProcessGitHub, gh: Any) -> None:
        issue_run = await issue_at(world, gh, Stage.DRAFT, "Retried")
        request = SolveRequest(world.ref.installation_id, world.ref.repo_id, REPO, issue_run.issue, MAINTAINER, "r2")
        assert await issue_run.queue(request, retry=True)  # `/mull retry` while the old head is critiqued
        await world.refresh_queued()
        seen = len(world.double.requests())
        kept = await issue_run.move(Stage.FAILED, yield_to_run=True, critique="Critique failed.",
                                    alert=Alert("failed", "the critique failed"))
        assert kept is not None and kept.state is ItemState.QUEUED and await issue_run.stage() is Stage.QUEUED
        assert world.writes(seen) == [] and not await world.refresh_queued()
        with pytest.raises(IllegalMove):  # the same news without yielding is a bug, and says so
            await issue_run.move(Stage.HELD)

    run(tmp_path, redis_url, app_keypair, scenario)


def test_a_retry_queued_while_news_of_the_pull_request_lands_is_not_overwritten(
        tmp_path: Path, redis_url: str, app_keypair: tuple[str, str]) -> None:
    """A critique of the old head fails just as `/mull retry` queues a new run: whichever comes second sees the
    first, so the issue ends queued with its run, never failed with a run its solve job may not start."""
    async def scenario(world: InProcessGitHub, gh: Any) -> None:
        issue_run = await issue_at(world, gh, Stage.DRAFT, "Raced")
        retry = lifecycle.of(world.svc, gh, world.ref, issue_run.issue, world.double.bot_login)
        request = SolveRequest(world.ref.installation_id, world.ref.repo_id, REPO, issue_run.issue, MAINTAINER, "r2")
        recording = issue_run._record
        queued: list[asyncio.Task[bool]] = []

        async def record_after_the_retry_tried(*args: Any) -> Any:
            # The retry arrives midway through the critique's move; it may not finish before the move does.
            queued.append(asyncio.create_task(retry.queue(request, retry=True)))
            await asyncio.wait(queued, timeout=0.5)
            return await recording(*args)

        issue_run._record = record_after_the_retry_tried  # type: ignore[method-assign]
        await issue_run.move(Stage.FAILED, yield_to_run=True, critique="Critique failed.", reason="critique failed")
        assert await queued[0]
        assert await issue_run.stage() is Stage.QUEUED
        assert await issue_run.backlog.is_pending(issue_run.issue)
        assert status_of(world, issue_run.issue)[0] is Phase.QUEUED

    run(tmp_path, redis_url, app_keypair, scenario)


def test_a_snoozed_issue_moves_underneath_and_wakes_where_it_went(
        tmp_path: Path, redis_url: str, app_keypair: tuple[str, str]) -> None:
    async def scenario(world: InProcessGitHub, gh: Any) -> None:
        issue_run = await issue_at(world, gh, Stage.WORKING, "Sleepy")
        await issue_run.move(Stage.SNOOZED, wake_at=world.svc.clock() + 3600)
        assert (await issue_run.backlog.get(issue_run.issue)).state is ItemState.SNOOZED
        assert await issue_run.stage() is Stage.WORKING  # what the lifecycle checks moves against
        with pytest.raises(IllegalMove):
            await issue_run.move(Stage.AWAITING)
        await issue_run.move(Stage.DRAFT, pr=77)  # the run opened its PR while it slept
        item = await issue_run.backlog.get(issue_run.issue)
        assert item.state is ItemState.SNOOZED and item.pr == 77
        assert status_of(world, issue_run.issue)[0] is Phase.PR_OPENED and state_labels(world, issue_run.issue) == set()
        await world.refresh_queued()
        woken = await issue_run.wake()
        assert woken is not None and woken.state is ItemState.DRAFT and await world.refresh_queued()

    run(tmp_path, redis_url, app_keypair, scenario)


def test_a_jobs_move_keeps_the_queue_line_written_since_the_job_began(
        tmp_path: Path, redis_url: str, app_keypair: tuple[str, str]) -> None:
    """A job reads the issue's run state when it begins and moves the issue minutes later; meanwhile the backlog
    refresh has written the issue's place in line into the same comment (and remembers it shows it). The job's
    write must not put back the line it read, nor the critique's news its lifecycle read before."""
    line = "**Review queue:** finished, but 3 Mull pull requests already await review in this repository"

    async def scenario(world: InProcessGitHub, gh: Any) -> None:
        job = await issue_at(world, gh, Stage.WORKING, "Slow run")
        state = await job.run_state()  # read at the job's start
        refresh = lifecycle.of(world.svc, gh, world.ref, job.issue, world.double.bot_login)
        shown = await refresh.status()
        await shown.write(replace(shown.state, queue=line))
        await job.move(Stage.DRAFT, run=state, pr=900 + job.issue)
        _, body = status_of(world, job.issue)
        assert f'"queue":"{line}"' in body and line in body.split("<!--")[0]

        critic = lifecycle.of(world.svc, gh, world.ref, job.issue, world.double.bot_login)
        await critic.status()  # loaded when the critique began
        newer = await refresh.status(fresh=True)
        await newer.write(replace(newer.state, queue=line + ": next in line."))
        await critic.note("Critique of the PR: **pass**.")
        _, body = status_of(world, job.issue)
        assert f'"queue":"{line}: next in line."' in body and "**pass**" in body

    run(tmp_path, redis_url, app_keypair, scenario)
