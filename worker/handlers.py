"""The ``handle_delivery`` job: route a stored delivery to the handler for its ``event.action``.

Handlers decide with the GitHub API (who sent it, may they, is a run already going) and enqueue the
long jobs; they never run an agent themselves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import orjson
from arq.jobs import Job, JobStatus
from githubkit import GitHub
from githubkit.exception import RequestFailed

from bot import keys
from bot.jobs import SOLVE_ISSUE, Delivery, SolveRequest, solve_job_id
from bot.settings import MullSettings
from worker import failures, labels
from worker.github_app import BotIdentity, GitHubApp
from worker.status import Phase, StatusComment

TRIGGER_ROLES = frozenset({"admin", "maintain", "write", "triage"})


@dataclass(frozen=True)
class Event:
    """One delivery, parsed, with the clients a handler needs."""

    delivery: Delivery
    payload: dict[str, Any]
    gh: GitHub
    bot: BotIdentity
    log: Any

    @property
    def repo(self) -> dict[str, Any]:
        return self.payload.get("repository") or {}

    @property
    def sender(self) -> str:
        return (self.payload.get("sender") or {}).get("login", "")


Handler = Callable[[dict[str, Any], Event], Awaitable[str]]
ROUTES: dict[str, Handler] = {}


def on(*names: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        for name in names:
            ROUTES[name] = handler
        return handler
    return register


async def handle_delivery(ctx: dict[str, Any], delivery: Delivery) -> str:
    payload = orjson.loads(delivery.body)
    name = f"{delivery.event}.{payload.get('action')}" if payload.get("action") else delivery.event
    installation = (payload.get("installation") or {}).get("id")
    repo = payload.get("repository") or {}
    log = ctx["log"].bind(delivery=delivery.guid, gh_event=name, installation=installation,
                          repo=repo.get("full_name"), job_id=ctx.get("job_id"))
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
            if event.sender == bot.login:
                log.debug("delivery ignored", reason="sent by mull itself")
                return "own event"
            return await handler(ctx, event)
    except Exception as exc:  # job boundary: transient GitHub trouble is retried, the rest fails loudly
        if failures.is_transient(exc) and ctx.get("job_try", 1) < failures.MAX_TRIES:
            log.warning("transient failure, retrying", error=str(exc)[:200], job_try=ctx.get("job_try"))
            raise failures.retry_later(exc, ctx.get("job_try", 1)) from exc
        raise


async def permission(gh: GitHub, repo: str, login: str) -> str:
    """The sender's role on the repo (admin, maintain, write, triage, read or none)."""
    owner, name = repo.split("/", 1)
    try:
        data = (await gh.rest.repos.async_get_collaborator_permission_level(owner, name, login)).json()
    except RequestFailed as exc:
        if exc.response.status_code == 404:
            return "none"
        raise
    return data.get("role_name") or data.get("permission") or "none"


async def _once(ctx: dict[str, Any], key: str) -> bool:
    """True the first time ``key`` is claimed: side effects that must not repeat when a job reruns."""
    return bool(await ctx["redis"].set(f"{keys.PREFIX}once:{key}", 1, nx=True, ex=7 * 24 * 3600))


@on("issues.labeled")
async def on_labeled(ctx: dict[str, Any], event: Event) -> str:
    settings: MullSettings = ctx["settings"]
    issue = event.payload.get("issue") or {}
    if (event.payload.get("label") or {}).get("name") != settings.label:
        return "another label"
    if issue.get("pull_request") or issue.get("state") == "closed":
        return "not an open issue"
    repo, repo_id, number = event.repo["full_name"], int(event.repo["id"]), int(issue["number"])
    owner, name = repo.split("/", 1)
    role = await permission(event.gh, repo, event.sender)
    if role not in TRIGGER_ROLES:
        event.log.info("trigger refused", sender=event.sender, role=role)
        if await _once(ctx, f"refusal:{event.delivery.guid}"):
            await event.gh.rest.issues.async_create_comment(owner, name, number, body=(
                f"@{event.sender} Mull only starts work for people with write or triage access to this "
                f"repository (yours: {role}). A maintainer can add the `{settings.label}` label instead."))
        return "refused"
    await event.gh.rest.reactions.async_create_for_issue(owner, name, number, content="eyes")
    job_id = solve_job_id(repo_id, number)
    running = await Job(job_id, ctx["redis"]).status()
    if running in (JobStatus.queued, JobStatus.deferred, JobStatus.in_progress):
        event.log.info("run already queued or in progress", status=running.value)
        return "already running"
    status = StatusComment(event.gh, repo, repo_id, number, event.bot.login, ctx["redis"])
    async with ctx["redis"].lock(keys.issue_lock(repo_id, number), timeout=60, blocking_timeout=60):
        state = await status.load()
        await status.write(replace(state, phase=Phase.QUEUED), settings.label)
    await labels.move(event.gh, repo, number, to=labels.QUEUED)
    request = SolveRequest(installation_id=int(event.payload["installation"]["id"]), repo_id=repo_id, repo=repo,
                           issue=number, requested_by=event.sender, trigger=event.delivery.guid)
    job = await ctx["redis"].enqueue_job(SOLVE_ISSUE, request, _job_id=job_id)
    event.log.info("run queued", queued=job is not None, issue=number)
    return "queued"
