"""The ``solve_issue`` job: agent in a worktree → commit → push ``mull/issue-N`` → draft PR → status.

Every step is idempotent so arq may run the job again at any point: the branch name is fixed, the PR is
looked up before it is created, the status comment is edited in place, and a rerun for the same trigger
that finds its commit already pushed goes straight to the PR instead of running the agent again.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from arq import Retry

from bot import keys
from bot.jobs import CritiqueRequest, SolveRequest, branch_name, enqueue_critique
from bot.redaction import scrub
from worker import lifecycle
from worker.agent.base import AgentResult
from worker.agent.project_commands import ProjectRun, SetupFailed
from worker.agent.prompt import build_prompt, read_instructions, with_request
from worker.backlog import store as backlogs
from worker.github import pull_requests
from worker.jobs import test_run
from worker.jobs.boundary import JobRun, job_boundary
from worker.jobs.branch_work import end_prefetch, prefetch, run_on_branch
from worker.jobs.failed_work import work_of
from worker.jobs.plan_stage import plan_stage
from worker.jobs.services import services
from worker.lifecycle import Alert, IllegalMove, Stage
from worker.ops import spend, stats
from worker.repo_config.settings import config_for
from worker.sessions import record as sessions
from worker.views import command_output, defuse

RETRY_HINT = "Comment `/mull retry` to run it again."


def commit_message(title: str, issue: int, result: AgentResult, co_author: tuple[str, int] | None) -> str:
    lines = [f"{title[:60]} (#{issue})", "", f"Agent run for issue #{issue}."]
    if result.budget_tripped:
        lines.append(f"Work in progress: the {result.budget_tripped} budget ran out.")
    if co_author:
        login, user_id = co_author
        lines += ["", f"Co-authored-by: {login} <{user_id}+{login}@users.noreply.github.com>"]
    return "\n".join(lines) + "\n"


async def solve_issue(ctx: dict[str, Any], request: SolveRequest) -> str:
    ends = True  # the run ends here unless arq will try it again: then it keeps its slot in the repo's line
    try:
        async with job_boundary(ctx, request.ref, run_slot=True, issue=request.issue) as job:
            return await _solve(job, request)
    except Retry:
        ends = False
        raise
    finally:
        if ends:
            await lifecycle.run_ended(services(ctx), request.ref, request.issue)


async def _solve(job: JobRun, request: SolveRequest) -> str:
    svc, gh, log, ref = job.svc, job.gh, job.log, request.ref
    bot = await svc.github.identity(gh)
    issue_run = lifecycle.of(svc, gh, ref, request.issue, bot.login)
    state = (await issue_run.run_state()).begin(request.trigger)
    fetched = None
    try:
        config = await config_for(svc, gh, ref)
        issue_got, repo_got = await asyncio.gather(gh.rest.issues.async_get(ref.owner, ref.name, request.issue),
                                                   gh.rest.repos.async_get(ref.owner, ref.name))
        issue: Any = issue_got.json()
        repo: Any = repo_got.json()
        fetched = await prefetch(job, repo)  # the mirror catches up while the issue's views are written
        try:  # arq running this job again after its worker died is the same run: a retry
            await issue_run.move(Stage.WORKING, run=state, retry=job.job_try > 1, title=issue.get("title") or "",
                                 reason="")
        except IllegalMove as exc:  # stopped, closed or merged since this job was queued
            log.info("run not started", reason=str(exc))
            return "not queued"
        planned = await plan_stage(svc, gh, ref, config, state, issue, repo, bot, log)
        state = planned.state
        if planned.waits:
            asked = state.plan == "asked"
            await issue_run.move(Stage.WAITING, run=state, note=planned.note, reason=(
                "the plan asks a question" if asked else "the plan waits for `/mull go`"),
                alert=Alert("question", "the agent's plan asks a question.", mention=False) if asked else None)
            return "waiting"
        branch = branch_name(request.issue)
        base = await backlogs.of(svc, request.repo_id).base(request.issue) or repo["default_branch"]
        existing = await pull_requests.find_open(gh, ref.owner, ref.name, branch)
        co_author = await _labeler(gh, request.requested_by)
        # Kept per trigger: a rerun of this revision resumes from its kept run; a new label runs a new one.
        run = await run_on_branch(
            job, repo, branch,
            prompt_for=lambda tree: build_prompt(ref.full_name, request.issue, issue.get("title", ""),
                                                 with_request(issue.get("body") or "", state.mention,
                                                              state.requested_by), read_instructions(tree),
                                                 extra=state.plan_text, setup_ran=bool(config.setup),
                                                 test_command=config.test),
            message_for=lambda res: commit_message(issue.get("title", ""), request.issue, res, co_author),
            bot=bot, config=config, keep_as=keys.kept_run(request.repo_id, request.issue, request.trigger),
            base=base, restart=existing is not None and existing["base"]["ref"] != base,
            subject=f"issue #{request.issue}", fetched=fetched)
        result, pushed = run.result, run.sha
        if pushed is None:
            reason = result.error or "the agent finished without changing any file"
            await stats.record_failure(svc.redis, "implement", ref.full_name, request.issue, reason,
                                       job=job.job_id, fix=work_of(request).fix)
            await issue_run.move(Stage.FAILED, run=state, reason=reason,
                                 note=f"**Reason:** {defuse.markdown(reason)}.\n\n{_quote(result.summary)}"
                                 + _session_line(svc.settings, result),
                                 alert=Alert("failed", f"the run failed: {reason}. {RETRY_HINT}"))
            return "no changes"
        state = replace(state, pushed_sha=pushed)
        await issue_run.move(Stage.WORKING, run=state, note="Pushed the agent's work; opening the pull request.")
        tests = await test_run.of(svc.redis, ref.repo_id, pushed) if config.test else None
        so_far = await spend.of_issue(svc.redis, request.repo_id, request.issue)
        body = pull_requests.render_body(request.issue, result, state.revision, request.requested_by,
                                         tests=command_output.tests_line(tests, config.test, config.test_timeout),
                                         session_url=sessions.link(svc.settings, result.session),
                                         so_far=so_far.describe() if so_far.runs else "")
        pr = await pull_requests.open_or_update(gh, ref, branch, base,
                                                issue.get("title") or f"Issue #{request.issue}", body)
        state = replace(state, pr=pr.number)
        await issue_run.move(Stage.DRAFT, run=state, note=_outcome(result, tests) + _session_line(svc.settings, result),
                             pr=pr.number,
                             reason="waiting for the critique", alert=None if not result.budget_tripped else Alert(
                                 "budget", f"the {result.budget_tripped} budget ran out; #{pr.number} holds the work "
                                 "done so far."))
        log.info("pull request ready", pr=pr.number, created=pr.created, sha=pushed)
        if pushed:  # the webhook for this head would queue it too; the job id makes that the same job
            await enqueue_critique(svc.redis, CritiqueRequest(
                installation_id=request.installation_id, repo_id=request.repo_id, repo=request.repo, pr=pr.number,
                head_sha=pushed))
        return f"#{pr.number}"
    except SetupFailed as exc:  # the repository's setup, not Mull, failed: say how to fix it; nothing to retry
        reason = f"setup failed: {exc.run.how(exc.budget)}"
        await stats.record_failure(svc.redis, "implement", ref.full_name, request.issue, reason, job=job.job_id,
                                   fix=work_of(request).fix)
        await issue_run.move(Stage.FAILED, run=state, reason=reason,
                             note=command_output.setup_failed(exc.run, exc.budget),
                             alert=Alert("failed", f"the repository's setup failed ({exc.run.how(exc.budget)}), so "
                                         "the agent did not run: see the status comment, fix `setup:` in "
                                         f".github/mull.yml, then {RETRY_HINT[0].lower()}{RETRY_HINT[1:]}"))
        return "setup failed"
    except Exception as exc:  # the job's boundary: say what failed where the user looks, then let arq see it
        if job.will_retry(exc):  # the boundary tries it again: nothing failed yet
            raise
        await stats.record_failure(svc.redis, "implement", ref.full_name, request.issue, _reason(exc),
                                   job=job.job_id, fix=work_of(request).fix)
        await issue_run.move(Stage.FAILED, run=state, note=f"**Reason:** {defuse.markdown(_reason(exc))}",
                             reason=_reason(exc),
                             alert=Alert("failed", f"the run failed: {_reason(exc)}. {RETRY_HINT}"))
        raise
    finally:
        await end_prefetch(fetched)


def _session_line(settings: Any, result: AgentResult) -> str:
    """A paragraph linking the run's session page, or nothing without one."""
    found = sessions.markdown_link(settings, result.session)
    return f"\n\n{found}." if found else ""


def _outcome(result: AgentResult, tests: ProjectRun | None) -> str:
    if tests is not None and not tests.ok:
        return (f"⚠️ Mull's run of the tests ({command_output.code_span(tests.command)}) failed: the pull request "
                "stays a draft until a revision passes them.")
    if result.budget_tripped:
        return (f"⚠️ The **{result.budget_tripped}** budget ran out before the agent finished: the pull "
                "request holds the work done until then.")
    if result.error:
        return f"⚠️ The agent stopped early ({defuse.markdown(result.error)}); the pull request holds what it changed."
    return ""


def _quote(text: str) -> str:
    """The agent's words in the status comment, defused: they are quoted, never Mull's own."""
    return "\n".join(f"> {line}" for line in defuse.markdown(text.strip()).splitlines()[:20]) if text.strip() else ""


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return scrub(text)[:300]


async def _labeler(gh: Any, login: str) -> tuple[str, int] | None:
    """The person who applied the label, for the Co-authored-by trailer."""
    if not login or login.endswith("[bot]"):
        return None
    user = (await gh.rest.users.async_get_by_username(login)).json()
    return login, int(user["id"])
