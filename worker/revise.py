"""The ``revise_pr`` job: the agent revises a Mull pull request on its own branch.

Reasons: a ``fix`` critique, a human review (debounced: it waits until reviewers have been quiet for a
while, so a burst of comments gives one revision), failing checks, or ``/mull revise``. After pushing, it
answers each review thread it addressed with the commit, and the new head gets its own critique.

What people wrote (review threads and bodies, a ``/mull revise`` request) reaches the agent only from
those who may direct it, and only inside the prompt's untrusted block; Mull's own words about the task
stand outside it.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from arq import Retry

from bot.jobs import (
    CritiqueRequest,
    ReviseRequest,
    enqueue_critique,
    enqueue_revise,
)
from worker import lifecycle
from worker.agent.base import AgentResult
from worker.agent.prompt import Notes, build_prompt, read_instructions
from worker.branch_work import run_on_branch
from worker.github_app import BotIdentity, GitHubApp
from worker.job_boundary import JobRun, job_boundary
from worker.pull_ownership import mull_issue
from worker.pull_state import PullState
from worker.repo_config import RepoConfig
from worker.repo_settings import config_for, quiet_seconds
from worker.review_threads import Thread, open_threads, render_threads
from worker.services import Services

REASON_TITLES = {"critique": "the critique's findings", "review": "review comments", "ci": "failing checks",
                 "command": "`/mull revise`"}
# Whose words each reason's notes are. All of them go inside the untrusted block: people wrote reviews and
# commands; check output is printed by the pull request's own code and tests, which the agent wrote; the
# critique's findings come from a model that read that code.
NOTE_SOURCES = {
    "review": ("comments on the pull request", "people's comments on the pull request under revision"),
    "command": ("comments on the pull request", "people's comments on the pull request under revision"),
    "ci": ("output of the failing checks", "the output of the pull request's failing checks, printed by "
           "code and tests that are part of the change"),
    "critique": ("the critique's findings", "the findings of an automated review of the pull request, "
                 "written by a model that read the change"),
}


async def revise_pr(ctx: dict[str, Any], request: ReviseRequest) -> str:
    async with job_boundary(ctx, request.ref, run_slot=True, pr=request.pr, reason=request.reason) as job:
        return await _revise(job, request)


async def _revise(job: JobRun, request: ReviseRequest) -> str:
    svc, gh, log = job.svc, job.gh, job.log
    app: GitHubApp = svc.github
    config = await config_for(svc, gh, request.ref)
    if request.reason == "review":
        last = await PullState(svc.redis, request.repo_id, request.pr).last_review()
        quiet_left = quiet_seconds(config) - (time.time() - last)
        if quiet_left > 0:  # reviewers are still at it: wait for the burst to end
            raise Retry(defer=timedelta(seconds=quiet_left + 0.2))
    owner, name = request.ref.owner, request.ref.name
    pull: Any = (await gh.rest.pulls.async_get(owner, name, request.pr)).json()
    bot = await app.identity(gh)
    issue_number = mull_issue(pull, bot.login)
    if pull["state"] != "open" or issue_number is None:
        return "not an open Mull pull request"
    notes: str = request.notes
    threads: list[Thread] = []
    read_at = time.time()
    if request.reason == "review":
        threads = await open_threads(gh, request.ref, request.pr, bot.login, log)
        if not threads and not notes:
            return "nothing to address"
        notes = "\n\n".join(filter(None, [notes, render_threads(threads) if threads else ""]))
    outcome = await _revise_with(job, request, pull, issue_number, bot, config, notes, threads)
    if request.reason == "review":
        await _review_came_meanwhile(svc, request, config, read_at)
    return outcome


async def _review_came_meanwhile(svc: Services, request: ReviseRequest, config: RepoConfig,
                                 read_at: float) -> None:
    """A review that arrived after the threads were read could not queue its own revision (this job's id was
    taken): queue it now, to wait for the reviewers' quiet like any other."""
    last = await PullState(svc.redis, request.repo_id, request.pr).last_review()
    if last > read_at:
        await enqueue_revise(svc.redis, ReviseRequest(
            installation_id=request.installation_id, repo_id=request.repo_id, repo=request.repo, pr=request.pr,
            reason="review", notes="", requested_by=request.requested_by), f"review-{int(last * 1000)}",
            defer_by=quiet_seconds(config))


async def _revise_with(job: JobRun, request: ReviseRequest, pull: Any, issue_number: int, bot: BotIdentity,
                       config: RepoConfig, notes: str, threads: list[Thread]) -> str:
    svc, gh, log = job.svc, job.gh, job.log
    owner, name = request.ref.owner, request.ref.name
    issue: Any = (await gh.rest.issues.async_get(owner, name, issue_number)).json()
    extra, fenced = task_texts(request, notes)
    run = await run_on_branch(
        job, pull["head"]["repo"], pull["head"]["ref"],
        prompt_for=lambda tree: build_prompt(request.repo, issue_number, issue.get("title", ""),
                                             issue.get("body") or "", read_instructions(tree), extra=extra,
                                             notes=fenced),
        message_for=lambda result: _message(request, result), bot=bot, config=config, stage="revise")
    issue_run = lifecycle.of(svc, gh, request.ref, issue_number, bot.login)
    if run.sha is None:
        await issue_run.note(f"Revision for {REASON_TITLES[request.reason]} on #{request.pr} changed nothing.")
        return "no changes"
    for thread in threads:
        await gh.rest.pulls.async_create_reply_for_review_comment(
            owner, name, request.pr, thread.root_id, body=f"Addressed in {run.sha}.")
    await enqueue_critique(svc.redis, CritiqueRequest(
        installation_id=request.installation_id, repo_id=request.repo_id, repo=request.repo, pr=request.pr,
        head_sha=run.sha))
    await issue_run.note(f"Revised #{request.pr} for {REASON_TITLES[request.reason]} in `{run.sha[:12]}`.")
    log.info("revision pushed", sha=run.sha, threads=len(threads))
    return run.sha


def task_texts(request: ReviseRequest, notes: str) -> tuple[str, Notes]:
    """Mull's words about the revision, for outside the untrusted block, and the notes, for inside it."""
    heading, whose = NOTE_SOURCES.get(request.reason, ("notes on the pull request", "notes on the pull request"))
    extra = (f"This is a revision of pull request #{request.pr}, which already holds earlier work on this issue. "
             f"Address {REASON_TITLES.get(request.reason, request.reason)}: they follow the issue in the "
             f"untrusted block below, under \"{heading}\".")
    return extra, Notes(heading, whose, notes)


def _message(request: ReviseRequest, result: AgentResult) -> str:
    lines = [f"Revise #{request.pr}: address {REASON_TITLES.get(request.reason, request.reason)}"]
    if result.budget_tripped:
        lines += ["", f"Work in progress: the {result.budget_tripped} budget ran out."]
    if request.requested_by:
        lines += ["", f"Requested by @{request.requested_by}."]
    return "\n".join(lines) + "\n"
