"""Starting a run on an issue: from its label, or from ``/mull retry``.

Both paths check the sender's permission the same way, post or reuse the one status comment, and enqueue
the deterministic ``solve:<repo_id>:<issue>`` job, so a second trigger while a run is queued or running is
a no-op rather than a second run.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from arq.jobs import Job, JobStatus

from bot import keys
from bot.jobs import SOLVE_ISSUE, SolveRequest, solve_job_id
from bot.settings import MullSettings
from worker import labels, snooze
from worker.events import TRIGGER_ROLES, Event, once, permission
from worker.repo_config import ConfigFileError
from worker.repo_settings import config_for
from worker.status import Phase, StatusComment

ACTIVE = (JobStatus.queued, JobStatus.deferred, JobStatus.in_progress)


async def run_status(ctx: dict[str, Any], repo_id: int, issue: int) -> JobStatus:
    return await Job(solve_job_id(repo_id, issue), ctx["redis"]).status()


async def queue_run(ctx: dict[str, Any], event: Event, issue: int, requested_by: str, trigger: str | None = None,
                    **state_changes: Any) -> bool:
    """Mark the issue queued and enqueue its run; False when one is already queued or running.

    ``trigger`` continues an existing revision (after `/mull go` or an answer); by default the delivery that
    asked starts a new one. ``state_changes`` go into the status marker with the queued phase.
    """
    if await run_status(ctx, event.repo_id, issue) in ACTIVE:
        return False
    status = StatusComment(event.gh, event.repo_name, event.repo_id, issue, event.bot.login, ctx["redis"])
    async with ctx["redis"].lock(keys.issue_lock(event.repo_id, issue), timeout=60, blocking_timeout=60):
        state = await status.load()
        await status.write(replace(state, phase=Phase.QUEUED, **state_changes))
    await labels.move(event.gh, event.repo_name, issue, to=labels.QUEUED)
    request = SolveRequest(installation_id=event.installation_id, repo_id=event.repo_id, repo=event.repo_name,
                           issue=issue, requested_by=requested_by, trigger=trigger or event.delivery.guid)
    job_id = solve_job_id(event.repo_id, issue)
    asleep = await snooze.snoozed_until(ctx["redis"], event.repo_id, issue)  # a snoozed issue's run waits
    job = await ctx["redis"].enqueue_job(SOLVE_ISSUE, request, _job_id=job_id, _defer_until=(
        datetime.fromtimestamp(asleep / 1000, UTC) if asleep else None))
    if job is None:
        event.log.warning("run not queued: arq holds this job id", issue=issue,
                          status=(await Job(job_id, ctx["redis"]).status()).value,
                          keys=[k.decode() for k in await ctx["redis"].keys(f"arq:*{job_id}")])
        return False
    event.log.info("run queued", issue=issue)
    return True


async def on_labeled(ctx: dict[str, Any], event: Event) -> str:
    settings: MullSettings = ctx["settings"]
    issue = event.payload.get("issue") or {}
    applied = (event.payload.get("label") or {}).get("name")
    if issue.get("pull_request") or issue.get("state") == "closed":
        return "not an open issue"
    number = int(issue["number"])
    owner, name = event.owner_name()
    try:
        config = await config_for(ctx, event.gh, event.repo_name, event.repo_id, event.installation_id)
    except ConfigFileError as err:
        if applied in (err.label, settings.label) and await once(ctx, f"config-error:{event.delivery.guid}"):
            await event.gh.rest.issues.async_create_comment(owner, name, number,
                                                            body=err.render_markdown(applied))
        event.log.warning("repository configuration is invalid", source=err.source, line=err.line, key=err.key)
        return "bad config"
    if applied != config.label:
        return "another label"
    role = await permission(event.gh, event.repo_name, event.sender)
    if role not in TRIGGER_ROLES:
        event.log.info("trigger refused", sender=event.sender, role=role)
        if await once(ctx, f"refusal:{event.delivery.guid}"):
            await event.gh.rest.issues.async_create_comment(owner, name, number, body=(
                f"@{event.sender} Mull only starts work for people with write or triage access to this "
                f"repository (yours: {role}). A maintainer can add the `{config.label}` label instead."))
        return "refused"
    await event.gh.rest.reactions.async_create_for_issue(owner, name, number, content="eyes")
    if not await queue_run(ctx, event, number, event.sender):
        event.log.info("run already queued or in progress", issue=number)
        return "already running"
    return "queued"
