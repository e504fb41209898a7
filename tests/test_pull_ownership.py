"""A pull request is Mull's only when its head is in the base repository, its branch is ``mull/issue-N`` and
Mull's bot opened it: a fork's ``mull/issue-7`` or someone else's gets no critique, revision, release or
command. GitHub over respx, jobs on a real Redis; each bad case beside the good one."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx
from doubles.pull_webhooks import (
    API,
    BOT,
    PR,
    REPO,
    REPO_ID,
    event,
    handle,
    no_config,
    pull,
    review_comment,
    roles,
)

from bot.jobs import ReviseRequest, critique_job_id, revise_job_id
from worker.github.pull_ownership import mull_issue
from worker.jobs.boundary import JobRun
from worker.jobs.critique import maybe_release
from worker.jobs.revise import _revise
from worker.webhooks.pull_events import on_closed, on_pull_request, on_review, on_review_comment

FORK = pull(head_repo_id=99)
DELETED_FORK = pull(head_repo_id=None)
SOMEONE_ELSES = pull(opener="wanda")
NOT_OURS = {"fork": FORK, "deleted fork": DELETED_FORK, "someone else's": SOMEONE_ELSES}


@pytest.mark.parametrize(("the_pull", "issue"), [
    pytest.param(pull(), 7, id="mull's"),
    pytest.param(FORK, None, id="fork"),
    pytest.param(DELETED_FORK, None, id="deleted-fork"),
    pytest.param(SOMEONE_ELSES, None, id="opened-by-someone-else"),
    pytest.param(pull(ref="feature/x"), None, id="other-branch"),
    pytest.param(pull(ref="mull/issue-7x"), None, id="not-an-issue-number"),
])
def test_mull_issue(the_pull: dict, issue: int | None) -> None:
    assert mull_issue(the_pull, BOT.login) == issue
    assert mull_issue(the_pull, "") is None  # without knowing its own login Mull claims nothing


def test_a_writers_review_on_a_fork_or_someone_elses_mull_branch_does_nothing(redis_url: str) -> None:
    review = {"state": "changes_requested", "body": "Run the agent on this."}
    for kind, the_pull in [*NOT_OURS.items(), ("mull's", pull())]:
        with respx.mock(assert_all_called=False) as mock:
            asked = roles(mock, wanda="write")
            no_config(mock)
            answer, queued, _ = handle(redis_url, on_review, lambda gh, p=the_pull: event(
                "pull_request_review", gh, "wanda", p, action="submitted", review=review))
        if kind == "mull's":
            assert answer == "revision scheduled" and queued == [revise_job_id(REPO_ID, PR, "review")]
        else:
            assert (answer, queued, asked.called) == ("not a Mull pull request", [], False), kind


def test_a_new_head_on_a_fork_gets_no_critique(redis_url: str) -> None:
    for kind, the_pull in [*NOT_OURS.items(), ("mull's", pull())]:
        with respx.mock(assert_all_called=False):
            answer, queued, _ = handle(redis_url, on_pull_request, lambda gh, p=the_pull: event(
                "pull_request", gh, BOT.login, p, action="synchronize"))
        expected = [critique_job_id(REPO_ID, PR, "a" * 40)] if kind == "mull's" else []
        assert queued == expected, kind


def test_closing_a_fork_releases_nothing(redis_url: str) -> None:
    with respx.mock(assert_all_called=True):  # no GitHub call at all
        answer, queued, _ = handle(redis_url, on_closed, lambda gh: event(
            "pull_request", gh, "wanda", {**FORK, "state": "closed", "merged": True}, action="closed"))
    assert (answer, queued) == ("not a Mull pull request", [])


def test_checks_passing_on_a_fork_release_nothing(redis_url: str) -> None:
    async def act(ctx: dict[str, Any], the_event: Any) -> str:
        return await maybe_release(ctx, the_event.gh, the_event.ref, PR, BOT.login, the_event.log)

    with respx.mock(assert_all_called=False) as mock:
        mock.get(f"{API}/repos/{REPO}/pulls/{PR}").mock(return_value=httpx.Response(200, json=FORK))
        answer, _, _ = handle(redis_url, act, lambda gh: event("check_suite", gh, "ci", FORK))
        assert answer == "not a Mull pull request"
        assert [call.request.url.path for call in mock.calls] == [f"/repos/{REPO}/pulls/{PR}"]


def test_a_revision_job_for_a_fork_runs_no_agent(redis_url: str) -> None:
    request = ReviseRequest(9, REPO_ID, REPO, PR, "command", "@wanda asks: go", "wanda")
    for kind, the_pull in NOT_OURS.items():
        async def act(svc: Any, the_event: Any) -> str:
            return await _revise(JobRun(svc, "revise:1", 1, the_event.gh, the_event.log), request)

        with respx.mock(assert_all_called=False) as mock:
            no_config(mock)
            mock.get(f"{API}/repos/{REPO}/pulls/{PR}").mock(return_value=httpx.Response(200, json=the_pull))
            answer, queued, _ = handle(redis_url, act, lambda gh, p=the_pull: event("x", gh, "wanda", p))
        assert (answer, queued) == ("not an open Mull pull request", []), kind


def command(redis_url: str, the_pull: dict) -> tuple[str, list[str], list[str]]:
    """``/mull revise`` typed by a writer in a review comment: the answer, jobs queued, and Mull's replies."""
    with respx.mock(assert_all_called=False) as mock:
        roles(mock, wanda="write")
        no_config(mock)
        mock.post(f"{API}/repos/{REPO}/pulls/comments/5/reactions").mock(return_value=httpx.Response(201, json={}))
        replies = mock.post(f"{API}/repos/{REPO}/issues/{PR}/comments").mock(
            return_value=httpx.Response(201, json={}))
        answer, queued, _ = handle(redis_url, on_review_comment,
                                   lambda gh: review_comment(gh, "wanda", the_pull, "/mull revise tidy up"))
        said = [call.request.content.decode() for call in replies.calls]
    return answer, queued, said


def test_commands_on_a_fork_act_on_nothing(redis_url: str) -> None:
    answer, queued, said = command(redis_url, FORK)
    assert answer == "revise: refused" and queued == []
    assert len(said) == 1 and "works on a pull request Mull opened" in said[0]
    answer, queued, said = command(redis_url, pull())
    assert answer == "revise: ok" and [job.split(":command-")[0] for job in queued] == [
        revise_job_id(REPO_ID, PR, "")[:-1]]
