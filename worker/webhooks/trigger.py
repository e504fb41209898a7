"""Starting a run on an issue: from its label, a mention of Mull, or ``/mull retry``.

Both paths check the sender's permission the same way, post or reuse the one status comment, and enqueue
the deterministic ``solve:<repo_id>:<issue>`` job, so a second trigger while a run is queued or running is
a no-op rather than a second run.
"""

from __future__ import annotations

import asyncio
from typing import Any

from arq.jobs import JobStatus

from bot import keys
from bot.jobs import SolveRequest, solve_job_id
from bot.settings import MullSettings
from worker import lifecycle
from worker.backlog import store as backlogs
from worker.backlog.jobs import start_runs
from worker.backlog.store import Backlog, Limits
from worker.github import base_branch
from worker.jobs import queue as job_queue
from worker.jobs.services import Services
from worker.lifecycle import Stage
from worker.repo_config import ConfigFileError
from worker.repo_config.settings import config_for
from worker.webhooks.events import TRIGGER_ROLES, Event, once, permission
from worker.webhooks.installations import request_abort

ACTIVE = (JobStatus.queued, JobStatus.deferred, JobStatus.in_progress)
# A run's job goes on for moments after its pull request opened or its plan was posted (the critique to queue,
# its slot to give back); a trigger that arrives then waits for it rather than being turned away.
FINISHING_WAIT_S = 10.0
FINISHING_POLL_S = 0.05


async def run_status(svc: Services, repo_id: int, issue: int) -> JobStatus:
    return await job_queue.job(solve_job_id(repo_id, issue), svc.redis).status()


async def status_after_finishing(svc: Services, event: Event, issue: int) -> JobStatus:
    """The issue's run job's status, once a job that is only finishing has ended: one still in progress while
    the issue has moved past its run (a draft, a waiting plan, a failure) has done its work. Waits at most
    ``FINISHING_WAIT_S``; a job that is still working is answered at once."""
    status = await run_status(svc, event.repo_id, issue)
    if status is not JobStatus.in_progress:
        return status
    issue_run = lifecycle.of(svc, event.gh, event.ref, issue, event.bot.login)
    deadline = asyncio.get_running_loop().time() + FINISHING_WAIT_S
    while status is JobStatus.in_progress and await issue_run.stage() not in (None, Stage.QUEUED, Stage.WORKING):
        if asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(FINISHING_POLL_S)
        status = await run_status(svc, event.repo_id, issue)
    return status


async def queue_run(svc: Services, event: Event, issue: int, requested_by: str, trigger: str | None = None,
                    title: str = "", **state_changes: Any) -> bool:
    """Mark the issue queued and put its run in the repo's line; False when one is already queued or running.

    ``trigger`` continues an existing revision (after `/mull go` or an answer); by default the delivery that
    asked starts a new one, a retry. ``state_changes`` go into the status marker with the queued phase. The run
    starts when the repo has fewer than ``max_in_flight`` going (``worker.backlog.store``).
    """
    backlog = backlogs.of(svc, event.repo_id)
    if await status_after_finishing(svc, event, issue) in ACTIVE or await backlog.is_pending(issue):
        return await _not_queued(svc, backlog, event)
    try:
        config = await config_for(svc, event.gh, event.ref)
        await backlog.remember_repo(event.installation_id, event.repo_name, Limits.of(config))
    except ConfigFileError:  # the run itself says so on the issue; the line keeps the limits it had
        await backlog.remember_repo(event.installation_id, event.repo_name)
    request = SolveRequest(installation_id=event.installation_id, repo_id=event.repo_id, repo=event.repo_name,
                           issue=issue, requested_by=requested_by, trigger=trigger or event.delivery.guid)
    issue_run = lifecycle.of(svc, event.gh, event.ref, issue, event.bot.login)
    if not await issue_run.queue(request, retry=trigger is None, title=title,
                                 asked_by=event.delivery.guid, **state_changes):
        return await _not_queued(svc, backlog, event)
    event.log.info("run queued", issue=issue)
    return True


async def _not_queued(svc: Services, backlog: Backlog, event: Event) -> bool:
    """Nothing new to queue; still move the line on: this may be a delivery retried after its worker died
    between queueing the run and starting the line."""
    await start_runs(svc, backlog, event.ref)
    return False


async def on_labeled(svc: Services, event: Event) -> str:
    settings: MullSettings = svc.settings
    issue = event.payload.get("issue") or {}
    applied = (event.payload.get("label") or {}).get("name")
    if issue.get("pull_request") or issue.get("state") == "closed":
        return "not an open issue"
    number = int(issue["number"])
    owner, name = event.owner_name()
    try:
        config = await config_for(svc, event.gh, event.ref)
    except ConfigFileError as err:
        if applied in (err.label, settings.label) and await once(svc, keys.once(f"config-error:{event.delivery.guid}")):
            await event.gh.rest.issues.async_create_comment(owner, name, number,
                                                            body=err.render_markdown(applied))
        event.log.warning("repository configuration is invalid", source=err.source, line=err.line, key=err.key)
        return "bad config"
    if applied != config.label:
        return "another label"
    role = await permission(event.gh, event.ref, event.sender)
    if role not in TRIGGER_ROLES:
        event.log.info("trigger refused", sender=event.sender, role=role)
        if await once(svc, keys.once(f"refusal:{event.delivery.guid}")):
            await event.gh.rest.issues.async_create_comment(owner, name, number, body=(
                f"@{event.sender} Mull only starts work for people with write or triage access to this "
                f"repository (yours: {role}). A maintainer can add the `{config.label}` label instead."))
        return "refused"
    if not await _base_from_body(svc, event, number, issue.get("body")):
        return "bad base"
    await event.gh.rest.reactions.async_create_for_issue(owner, name, number, content="eyes")
    if not await queue_run(svc, event, number, event.sender, title=issue.get("title") or "", mention=""):
        event.log.info("run already queued or in progress", issue=number)
        return "already running"
    return "queued"


async def _base_from_body(svc: Services, event: Event, issue: int, body: str | None) -> bool:
    """Keep the issue body's ``base: <branch>`` line as the run's base (a ``/mull base`` given earlier wins);
    False, after saying why on the issue, when it names no usable branch: then nothing runs."""
    backlog = backlogs.of(svc, event.repo_id)
    choice = await backlog.base_choice(issue)
    if choice is not None and choice[1] == "command":
        return True
    written = base_branch.from_body(body)
    if written is None:
        await backlog.set_base(issue, None)  # a line removed since an earlier run: the default branch again
        return True
    try:
        branch = await base_branch.usable(event.gh, event.ref, written, base_branch.BODY_FIX)
    except base_branch.BadBase as exc:
        if await once(svc, keys.once(f"base-refusal:{event.delivery.guid}")):
            owner, name = event.owner_name()
            await event.gh.rest.issues.async_create_comment(owner, name, issue, body=(
                f"@{event.sender} Mull did not start: the issue's `base:` line cannot be used: {exc}"))
        event.log.info("base branch refused", issue=issue)
        return False
    await backlog.set_base(issue, branch, "body")
    return True


async def take_out_of_line(svc: Services, event: Event, issue: int, why: str) -> bool:
    """An issue closed or unlabeled before its run started leaves the line; False when it was not waiting."""
    backlog = backlogs.of(svc, event.repo_id)
    if not await backlog.unqueue(issue):
        job = job_queue.job(solve_job_id(event.repo_id, issue), svc.redis)
        if await job.status() not in (JobStatus.queued, JobStatus.deferred):
            return False
        await request_abort(job)  # it had a slot but had not started
        await backlog.run_ended(issue)
    issue_run = lifecycle.of(svc, event.gh, event.ref, issue, event.bot.login)
    await issue_run.move(Stage.DONE, note=f"**Stopped** before it started: {why}.")
    await start_runs(svc, backlog, event.ref)
    event.log.info("taken out of the line", issue=issue, why=why)
    return True


async def on_unlabeled(svc: Services, event: Event) -> str:
    """Removing the trigger label from a queued issue cancels its run; a running one goes on (``/mull stop``)."""
    issue = event.payload.get("issue") or {}
    if issue.get("pull_request"):
        return "not an issue"
    try:
        config = await config_for(svc, event.gh, event.ref)
    except ConfigFileError:
        return "bad config"
    if (event.payload.get("label") or {}).get("name") != config.label:
        return "another label"
    taken = await take_out_of_line(svc, event, int(issue["number"]), f"@{event.sender} removed the "
                                                                     f"`{config.label}` label")
    return "taken out of the line" if taken else "not waiting"
