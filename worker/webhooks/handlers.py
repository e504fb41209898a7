"""The ``handle_delivery`` job: route a stored delivery to the handler for its ``event.action``.

Handlers decide with the GitHub API (who sent it, may they, is a run already going) and enqueue the
long jobs; they never run an agent themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from arq import Retry
from redis.exceptions import RedisError

from bot.jobs import Delivery, RepoRef, retry_of
from worker.github import failures
from worker.jobs.boundary import job_boundary
from worker.jobs.services import Services, services
from worker.repo_config import settings as repo_settings
from worker.webhooks import comment_commands, dead_letters, installations, pull_events, trigger
from worker.webhooks.events import Event

Handler = Callable[[Services, Event], Awaitable[str]]

# arq's limits for the job (worker/app.py). Mull's own budget is shorter, so a handler that hangs ends in a
# TimeoutError Mull can keep as a dead letter, not in arq's cancellation, which skips the job's boundary.
JOB_TIMEOUT_S = 120
HANDLING_BUDGET_S = JOB_TIMEOUT_S - 10
MAX_TRIES = failures.MAX_TRIES


class LastTryStopped(Exception):
    """Kept before a delivery's last try: if the worker dies during it, arq gives up without telling Mull."""

    def __init__(self) -> None:
        super().__init__("the worker stopped during the last try (killed or shut down); retry it")


ROUTES: dict[str, Handler] = {
    "issues.labeled": trigger.on_labeled,
    "issues.unlabeled": trigger.on_unlabeled,
    "issue_comment.created": comment_commands.on_comment,
    "issue_comment.edited": comment_commands.on_comment,
    "pull_request_review_comment.created": pull_events.on_review_comment,
    "pull_request_review_comment.edited": pull_events.on_review_comment,
    "pull_request_review.submitted": pull_events.on_review,
    "pull_request.opened": pull_events.on_pull_request,
    "pull_request.synchronize": pull_events.on_pull_request,
    "pull_request.reopened": pull_events.on_pull_request,
    "pull_request.closed": pull_events.on_closed,
    "pull_request.converted_to_draft": pull_events.on_draft_changed,
    "pull_request.ready_for_review": pull_events.on_draft_changed,
    "issues.closed": pull_events.on_issue_closed,
    "check_suite.completed": pull_events.on_check_suite,
    "push": repo_settings.on_push,
}

# Mull's own pushes and pull requests need a critique like anyone's; every other own event is ignored.
OWN_EVENTS_HANDLED = frozenset({"pull_request.opened", "pull_request.synchronize", "pull_request.reopened"})


async def handle_delivery(ctx: dict[str, Any], delivery: Delivery) -> str:
    """The job's boundary. Transient trouble (GitHub 5xx, rate limits, lost connections) is tried again up to
    ``failures.MAX_TRIES``; a failure that will not be tried again leaves a dead letter
    (``worker/webhooks/dead_letters.py``), since GitHub got 202 and will never redeliver it. A retried dead letter that
    succeeds is removed."""
    svc = services(ctx)
    job_id = ctx.get("job_id") or ""
    job_try = ctx.get("job_try", 1)
    provisional = job_try >= MAX_TRIES
    if provisional:  # arq fails a job whose worker died on its last try without running it again
        await dead_letters.record(svc.redis, delivery, LastTryStopped(), job_id)
    try:
        async with asyncio.timeout(HANDLING_BUDGET_S):
            outcome = await _route(ctx, delivery)
    except Retry:  # a handler asked arq to try again later
        raise
    except Exception as exc:  # job boundary: transient trouble is retried, the rest is kept as a dead letter
        if isinstance(exc, TimeoutError):
            exc = TimeoutError(f"handling took longer than {HANDLING_BUDGET_S} s")
        if failures.is_transient(exc) and job_try < MAX_TRIES:
            raise failures.retry_later(exc, job_try) from exc  # noted and logged by worker/jobs/failed_work.py
        try:
            dropped = await dead_letters.record(svc.redis, delivery, exc, job_id)
        except (RedisError, OSError) as lost:  # Redis itself is the trouble: the log is all that is left
            svc.log.error(f"delivery lost: could not keep it as a dead letter: {failures.describe(exc)}",
                             delivery=delivery.guid, job_id=job_id, error=failures.describe(lost))
        else:
            svc.log.error(f"delivery failed on its last try: {failures.describe(exc)}; kept as a dead letter, "
                             f"retry with `mull retry-deliveries {delivery.guid}`", delivery=delivery.guid,
                             job_id=job_id, error_type=type(exc).__name__)
            if dropped:
                svc.log.error("dead letters at their cap: the oldest were dropped", dropped=dropped)
        failures.mark_reported(exc)
        raise
    if retry_of(job_id) or provisional:
        await dead_letters.forget(svc.redis, delivery.guid)
    return outcome


async def _route(ctx: dict[str, Any], delivery: Delivery) -> str:
    svc = services(ctx)
    payload = orjson.loads(delivery.body)
    name = f"{delivery.event}.{payload.get('action')}" if payload.get("action") else delivery.event
    installation = (payload.get("installation") or {}).get("id")
    repo = payload.get("repository") or {}
    log = svc.log.bind(delivery=delivery.guid, gh_event=name, installation=installation,
                       repo=repo.get("full_name"), job_id=ctx.get("job_id"))
    if delivery.event in ("installation", "installation_repositories") and installation:
        # No GitHub call: a deleted installation has no token to make one with.
        track = installations.on_installation if delivery.event == "installation" else \
            installations.on_installation_repositories
        outcome = await track(ctx, payload, log)
        log.info("installation change", outcome=outcome)
        return outcome
    handler = ROUTES.get(name)
    if handler is None or not installation:
        log.debug("delivery ignored", reason="no handler" if handler is None else "no installation")
        return "ignored"
    ref = RepoRef.of(int(installation), int(repo["id"]), str(repo["full_name"])) if repo.get("id") else None
    # Deliveries of a suspended installation are still handled (an unsuspend must get through): no pause.
    async with job_boundary(ctx, ref, int(installation), pause_when_suspended=False, delivery=delivery.guid,
                            gh_event=name) as job:
        bot = await svc.github.identity(job.gh)
        event = Event(delivery, payload, job.gh, bot, job.log)
        if event.sender == bot.login and name not in OWN_EVENTS_HANDLED:
            log.debug("delivery ignored", reason="sent by mull itself")
            return "own event"
        return await handler(svc, event)


