"""The ``handle_delivery`` job: route a stored delivery to the handler for its ``event.action``.

Handlers decide with the GitHub API (who sent it, may they, is a run already going) and enqueue the
long jobs; they never run an agent themselves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from bot.jobs import Delivery
from worker import comment_commands, failures, installations, pull_events, repo_settings, trigger
from worker.events import Event
from worker.github_app import GitHubApp

Handler = Callable[[dict[str, Any], Event], Awaitable[str]]


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
    payload = orjson.loads(delivery.body)
    name = f"{delivery.event}.{payload.get('action')}" if payload.get("action") else delivery.event
    installation = (payload.get("installation") or {}).get("id")
    repo = payload.get("repository") or {}
    log = ctx["log"].bind(delivery=delivery.guid, gh_event=name, installation=installation,
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
    app: GitHubApp = ctx["github"]
    gh = app.installation(installation, repo.get("id"))
    try:
        async with gh:  # one HTTP connection pool for the whole job, not one per request
            bot = await app.identity(gh)
            event = Event(delivery, payload, gh, bot, log)
            if event.sender == bot.login and name not in OWN_EVENTS_HANDLED:
                log.debug("delivery ignored", reason="sent by mull itself")
                return "own event"
            return await handler(ctx, event)
    except Exception as exc:  # job boundary: transient GitHub trouble is retried, the rest fails loudly
        if failures.is_transient(exc) and ctx.get("job_try", 1) < failures.MAX_TRIES:
            log.warning("transient failure, retrying", error=str(exc)[:200], job_try=ctx.get("job_try"))
            raise failures.retry_later(exc, ctx.get("job_try", 1)) from exc
        raise


