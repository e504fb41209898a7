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
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
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
from worker.agent.project_commands import SetupFailed
from worker.agent.prompt import Notes, build_prompt, read_instructions
from worker.backlog.pull_state import PullState
from worker.github import pull_requests
from worker.github.app import BotIdentity, GitHubApp
from worker.github.base_branch import shown
from worker.github.pull_ownership import mull_issue
from worker.github.review_threads import Thread, open_threads, render_threads
from worker.jobs import test_run
from worker.jobs.boundary import JobRun, job_boundary
from worker.jobs.branch_work import run_on_branch
from worker.jobs.budget_hold import hold_while_spent
from worker.jobs.services import Services
from worker.ops import spend
from worker.repo_config import RepoConfig
from worker.repo_config.settings import config_for, quiet_seconds
from worker.sessions import record as sessions
from worker.trees import base_update
from worker.views import command_output

REASON_TITLES = {"critique": "the critique's findings", "review": "review comments", "ci": "failing checks",
                 "command": "`/mull revise`", "update": "the update with its base branch"}
# Whose words each reason's notes are. All of them go inside the untrusted block: people wrote reviews and
# commands; check output is printed by the pull request's own code and tests, which the agent wrote; the
# critique's findings come from a model that read that code.
NOTE_SOURCES = {
    "review": ("comments on the pull request", "people's comments on the pull request under revision"),
    "command": ("comments on the pull request", "people's comments on the pull request under revision"),
    "ci": ("output of the failing checks", "the output of the pull request's failing checks, printed by "
           "code and tests that are part of the change"),
    "update": ("what bringing it up to date with its base found", "Mull's report of merging the base branch into "
               "the pull request (the conflicted file names come from the repository) or of its failing tests"),
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
    # Before the requests are taken: a revision that waits for the budget keeps them for its later try.
    await hold_while_spent(job, lifecycle.of(svc, gh, request.ref, issue_number, bot.login),
                           f"The revision for {REASON_TITLES[request.reason]} on #{request.pr}")
    notes: str = request.notes
    threads: list[Thread] = []
    read_at = time.time()
    if request.reason == "review":
        threads = await open_threads(gh, request.ref, request.pr, bot.login, log)
        notes = "\n\n".join(filter(None, [notes, await PullState(svc.redis, request.repo_id, request.pr)
                                            .take_requests()]))
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
    issue_run = lifecycle.of(svc, gh, request.ref, issue_number, bot.login)
    try:
        run = await run_on_branch(
            job, pull["head"]["repo"], pull["head"]["ref"],
            prompt_for=lambda tree: build_prompt(request.repo, issue_number, issue.get("title", ""),
                                                 issue.get("body") or "", read_instructions(tree), extra=extra,
                                                 notes=fenced, setup_ran=bool(config.setup),
                                                 test_command=config.test),
            message_for=lambda result: _message(request, result), bot=bot, config=config, stage="revise",
            start_from=_update_start(request, pull, config, bot), subject=f"pull request #{request.pr}")
    except SetupFailed as exc:  # the pull request stays as it is; the status comment says why and how to fix it
        await issue_run.note(f"Revision for {REASON_TITLES[request.reason]} on #{request.pr} did not run.\n\n"
                             + command_output.setup_failed(exc.run, exc.budget))
        log.warning("revision not run: setup failed", how=exc.run.how(exc.budget))
        return "setup failed"
    found = sessions.markdown_link(svc.settings, run.result.session)
    session = f" {found}." if found else ""
    if run.sha is None:
        stays = (f" #{request.pr} stays a draft until its branch merges cleanly into `{shown(pull['base']['ref'])}`."
                 if request.reason == "update" else "")
        await issue_run.note(f"Revision for {REASON_TITLES[request.reason]} on #{request.pr} changed nothing.{stays}"
                             + session)
        return "no changes"
    await _refresh_body(job, request, issue_number, config, run.result, run.sha)
    for thread in threads:
        await gh.rest.pulls.async_create_reply_for_review_comment(
            owner, name, request.pr, thread.root_id, body=f"Addressed in {run.sha}.")
    await enqueue_critique(svc.redis, CritiqueRequest(
        installation_id=request.installation_id, repo_id=request.repo_id, repo=request.repo, pr=request.pr,
        head_sha=run.sha))
    await issue_run.note(f"Revised #{request.pr} for {REASON_TITLES[request.reason]} in `{run.sha[:12]}`."
                         + session)
    log.info("revision pushed", sha=run.sha, threads=len(threads))
    return run.sha


async def _refresh_body(job: JobRun, request: ReviseRequest, issue_number: int, config: RepoConfig,
                        result: AgentResult, sha: str) -> None:
    """The pull request's test line and model use as of this revision: a reviewer must not read "passed" from a
    run before it. The body is read again just before the write, to keep what someone edited meanwhile."""
    svc, gh = job.svc, job.gh
    tests = await test_run.of(svc.redis, request.repo_id, sha) if config.test else None
    so_far = await spend.of_issue(svc.redis, request.repo_id, issue_number)
    pull = (await gh.rest.pulls.async_get(request.ref.owner, request.ref.name, request.pr)).json()
    body = pull.get("body") or ""
    updated = pull_requests.with_section(body, pull_requests.TESTS,
                                         command_output.tests_line(tests, config.test, config.test_timeout))
    updated = updated and pull_requests.with_section(updated, pull_requests.SPEND, pull_requests.model_use(
        result.spent, so_far.describe() if so_far.runs else "", run="The last revision"))
    if not updated:
        job.log.info("pull request body left as it is: its test or model-use section was edited away")
    elif updated != body:
        await gh.rest.pulls.async_update(request.ref.owner, request.ref.name, request.pr, body=updated)


def _update_start(request: ReviseRequest, pull: Any, config: RepoConfig,
                  bot: BotIdentity) -> Callable[[Path], Awaitable[str | None]] | None:
    """After a conflicting base update, the revision starts from that update, conflict markers and all (made
    again in this worker's mirror: the same inputs give the same commit); None: from the branch as pushed.
    Not when the branch moved since: its new commits would be lost."""
    if request.reason != "update" or not request.update_head or pull["head"]["sha"] != request.update_head:
        return None

    async def start(mirror: Path) -> str | None:
        done = await base_update.update(mirror, config.update, request.update_head, request.update_base,
                                        pull["base"]["ref"], bot.login, bot.email)
        return done.sha

    return start


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
