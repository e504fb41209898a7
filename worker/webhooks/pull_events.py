"""Webhooks about Mull's pull requests: new heads get critiqued, reviews and failing checks get revisions.

Only pull requests ``pull_ownership.mull_issue`` accepts are Mull's; everything else is left alone. A review
directs the agent, so it counts only from people who could change the repository themselves.
"""

from __future__ import annotations

from typing import Any

from bot.jobs import (
    CritiqueRequest,
    ReviseRequest,
    enqueue_critique,
    enqueue_revise,
    issue_of_branch,
)
from worker import lifecycle
from worker.backlog import readiness, release, snooze
from worker.backlog import store as backlogs
from worker.backlog.pull_state import CI_ATTEMPTS, PullState
from worker.backlog.state import ItemState
from worker.github.pull_ownership import mull_issue
from worker.jobs.critique import maybe_release
from worker.jobs.services import Services
from worker.lifecycle import Stage
from worker.ops import stats
from worker.repo_config.settings import config_for, quiet_seconds
from worker.webhooks import comment_commands, trigger
from worker.webhooks.events import TRIGGER_ROLES, Event, permission

FAILED_SUITE = frozenset({"failure", "timed_out", "action_required", "startup_failure"})


async def queue_critique(svc: Services, event: Event, pr: int, sha: str) -> bool:
    return await enqueue_critique(svc.redis, CritiqueRequest(
        installation_id=event.installation_id, repo_id=event.repo_id, repo=event.repo_name, pr=pr, head_sha=sha))


async def on_pull_request(svc: Services, event: Event) -> str:
    """opened / synchronize / reopened, from Mull's own pushes as much as from people's."""
    pull = event.payload["pull_request"]
    issue = mull_issue(pull, event.bot.login)
    if issue is None or pull.get("state") != "open":
        return "not a Mull pull request"
    if not event.sender_is_bot and event.sender != event.bot.login:  # someone pushed: a snooze ends
        await snooze.wake_up(svc, event.gh, event.ref, int(pull["number"]), f"push by @{event.sender}")
    if event.payload.get("action") == "reopened":  # a person takes the pull request up again
        await _issue(svc, event, issue).move(Stage.DRAFT, retry=True, pr=int(pull["number"]),
                                             reason=f"reopened by @{event.sender}")
    queued = await queue_critique(svc, event, int(pull["number"]), pull["head"]["sha"])
    return "critique queued" if queued else "critique already queued"


async def on_closed(svc: Services, event: Event) -> str:
    """A merged or closed Mull PR leaves the backlog and frees its review slot; snoozes waiting on it end."""
    pull = event.payload["pull_request"]
    await snooze.wake_dependants(svc, event.gh, event.ref, int(pull["number"]))
    issue = mull_issue(pull, event.bot.login)
    if issue is None:
        return "not a Mull pull request"
    outcome = "merged" if pull.get("merged") else "closed"
    await release.free_slot(svc, event.gh, event.ref, issue, int(pull["number"]), outcome)
    await _issue(svc, event, issue).move(Stage.DONE)
    return outcome


async def on_draft_changed(svc: Services, event: Event) -> str:
    """Someone moved a Mull PR in or out of draft by hand: back to draft frees its review slot; marking it
    ready takes one (a person may go over the cap; Mull itself never does)."""
    pull = event.payload["pull_request"]
    issue = mull_issue(pull, event.bot.login)
    if issue is None or pull.get("state") != "open":
        return "not an open Mull pull request"
    issue_run = _issue(svc, event, issue)
    pr = int(pull["number"])
    if event.payload.get("action") == "converted_to_draft":
        await release.free_slot(svc, event.gh, event.ref, issue, pr, "draft")
        await issue_run.move(Stage.DRAFT, retry=True, pr=pr, reason=f"moved back to draft by @{event.sender}")
        return "slot freed"
    if await issue_run.stage() is Stage.FAILED:  # a person takes it up again: back to draft on the way
        await issue_run.move(Stage.DRAFT, retry=True, pr=pr, reason=f"marked ready by @{event.sender}")
    requested = tuple(u["login"] for u in pull.get("requested_reviewers") or [])
    await issue_run.move(Stage.AWAITING, reviewers=requested)
    await stats.awaiting_review(svc.redis, event.repo_name, pr, True)
    return "marked ready by hand"


async def on_issue_closed(svc: Services, event: Event) -> str:
    """Snoozes ``until #N`` end when #N closes; a closed issue leaves the line, and the dashboard once its
    pull request (if any) is gone."""
    number = int(event.payload["issue"]["number"])
    woken = await snooze.wake_dependants(svc, event.gh, event.ref, number)
    if await trigger.take_out_of_line(svc, event, number, f"the issue was closed by @{event.sender}"):
        return f"woke {woken}, taken out of the line"
    item = await backlogs.of(svc, event.repo_id).get(number)
    if item is not None and item.state in (ItemState.FAILED, ItemState.WAITING, ItemState.SNOOZED) \
            and item.pr is None:
        await _issue(svc, event, number).move(Stage.DONE)
    return f"woke {woken}"


def _issue(svc: Services, event: Event, issue: int) -> lifecycle.IssueLifecycle:
    return lifecycle.of(svc, event.gh, event.ref, issue, event.bot.login)


async def on_check_suite(svc: Services, event: Event) -> str:
    suite = event.payload["check_suite"]
    if issue_of_branch(suite.get("head_branch") or "") is None:  # cheap first cut; the pull decides below
        return "not a Mull branch"
    pulls = suite.get("pull_requests") or []
    if not pulls:
        return "no pull request"
    pr = int(pulls[0]["number"])
    if suite.get("conclusion") in FAILED_SUITE:
        return await _fix_ci(svc, event, pr, suite["head_sha"])
    return await maybe_release(svc, event.gh, event.ref, pr, event.bot.login, event.log)


async def _fix_ci(svc: Services, event: Event, pr: int, sha: str) -> str:
    owner, name = event.owner_name()
    pull: Any = (await event.gh.rest.pulls.async_get(owner, name, pr)).json()
    if mull_issue(pull, event.bot.login) is None:
        return "not a Mull pull request"
    if pull["head"]["sha"] != sha:
        return "superseded"
    attempts = (await config_for(svc, event.gh, event.ref)).ci_fix_attempts
    spent = await PullState(svc.redis, event.repo_id, pr).spend(CI_ATTEMPTS, attempts)
    if spent is None:
        await event.gh.rest.issues.async_create_comment(owner, name, pr, body=(
            f"Checks still fail on `{sha[:12]}` after {attempts} automatic fix attempt(s); "
            "Mull stops here and leaves this pull request to you."))
        return "ci attempts used up"
    notes = await readiness.failing_checks(event.gh, event.ref, sha)
    await enqueue_revise(svc.redis, ReviseRequest(
        installation_id=event.installation_id, repo_id=event.repo_id, repo=event.repo_name, pr=pr, reason="ci",
        notes=f"Fix attempt {spent} of {attempts}.\n\n{notes or 'The checks failed.'}",
        requested_by=""), f"ci-{sha[:12]}")
    return "ci fix queued"


async def on_review(svc: Services, event: Event) -> str:
    """A person reviewed a Mull PR: changes requested, or comments. Revise once they have been quiet a while.

    Only people with write, maintain, admin or triage access direct the agent: anyone else's review is
    logged and dropped, so it neither queues a revision nor delays one."""
    if event.sender_is_bot:
        return "bot review"
    pull = event.payload["pull_request"]
    if mull_issue(pull, event.bot.login) is None:
        return "not a Mull pull request"
    review = event.payload.get("review") or {}
    if event.delivery.event == "pull_request_review" and review.get("state") not in ("changes_requested",
                                                                                      "commented"):
        return "nothing to revise"
    pr = int(pull["number"])
    role = await permission(event.gh, event.ref, event.sender)
    if role not in TRIGGER_ROLES:
        event.log.info("review ignored", login=event.sender, pr=pr,
                       reason=f"{role} access; revisions take reviews from write or triage access only")
        return "reviewer may not direct Mull"
    await snooze.wake_up(svc, event.gh, event.ref, pr, f"review by @{event.sender}")
    config = await config_for(svc, event.gh, event.ref)
    await PullState(svc.redis, event.repo_id, pr).touch_review()
    await enqueue_revise(svc.redis, ReviseRequest(
        installation_id=event.installation_id, repo_id=event.repo_id, repo=event.repo_name, pr=pr, reason="review",
        notes=_review_body(review), requested_by=event.sender), "review", defer_by=quiet_seconds(config))
    return "revision scheduled"


async def on_review_comment(svc: Services, event: Event) -> str:
    """A review comment is either a ``/mull`` command or review feedback."""
    handled = await comment_commands.on_comment(svc, event)
    if handled != "no command":
        return handled
    if event.payload.get("action") != "created":
        return "edited review comment"
    return await on_review(svc, event)


def _review_body(review: dict[str, Any]) -> str:
    body = (review.get("body") or "").strip()
    return f"The review says:\n{body}" if body and review.get("state") == "changes_requested" else ""
