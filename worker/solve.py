"""The ``solve_issue`` job: agent in a worktree → commit → push ``mull/issue-N`` → draft PR → status.

Every step is idempotent so arq may run the job again at any point: the branch name is fixed, the PR is
looked up before it is created, the status comment is edited in place, and a rerun for the same trigger
that finds its commit already pushed goes straight to the PR instead of running the agent again.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from typing import Any

from arq import Retry
from githubkit import GitHub

from bot import keys
from bot.jobs import CritiqueRequest, SolveRequest, branch_name, enqueue_critique
from bot.redaction import scrub
from worker import backlog as backlogs
from worker import defuse, failures, labels, pull_requests, stats
from worker.agent.base import AgentResult
from worker.agent.prompt import build_prompt, read_instructions
from worker.backlog_jobs import start_runs, touch
from worker.backlog_state import ItemState
from worker.branch_work import run_on_branch
from worker.failed_work import work_of
from worker.fairness import wait_for_slot
from worker.github_app import GitHubApp
from worker.installations import pause_if_suspended
from worker.needs_you import needs_you
from worker.plan_stage import plan_stage
from worker.repo_settings import config_for
from worker.status import Phase, StatusComment

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
        await pause_if_suspended(ctx, request.installation_id)
        await wait_for_slot(ctx, request.installation_id)
        try:
            gh = ctx["github"].installation(request.installation_id, request.repo_id)
            async with gh:  # one HTTP connection pool for the whole job, not one per request
                return await _solve(ctx, request, gh)
        finally:
            await ctx["slots"].release(request.installation_id, ctx["job_id"])
    except Retry:
        ends = False
        raise
    finally:
        if ends:
            backlog = backlogs.of(ctx, request.repo_id)
            await backlog.run_ended(request.issue)
            await start_runs(ctx, backlog, request.installation_id, request.repo)
            await touch(ctx, request.installation_id, request.repo_id, request.repo)


async def _solve(ctx: dict[str, Any], request: SolveRequest, gh: GitHub) -> str:
    app: GitHubApp = ctx["github"]
    log = ctx["log"].bind(job_id=ctx.get("job_id"), installation=request.installation_id, repo=request.repo,
                          issue=request.issue)
    bot = await app.identity(gh)
    owner, name = request.repo.split("/", 1)
    status = StatusComment(gh, request.repo, request.repo_id, request.issue, bot.login, ctx["redis"])
    state = (await status.load()).begin(request.trigger)
    state = replace(state, phase=Phase.WORKING, queue="")
    await status.write(state)
    await labels.move(gh, request.repo, request.issue, to=labels.WORKING)
    backlog = backlogs.of(ctx, request.repo_id)
    try:
        config = await config_for(ctx, gh, request.repo, request.repo_id, request.installation_id)
        issue: Any = (await gh.rest.issues.async_get(owner, name, request.issue)).json()
        await backlog.move(request.issue, ItemState.WORKING, title=issue.get("title") or "", reason="")
        repo: Any = (await gh.rest.repos.async_get(owner, name)).json()
        planned = await plan_stage(ctx, gh, request.repo, config, state, status, issue, repo, bot, log)
        if planned is None:
            asked = status.state.plan == "asked"
            item = await backlog.move(request.issue, ItemState.WAITING, reason=(
                "the plan asks a question" if asked else "the plan waits for `/mull go`"))
            if asked:
                await needs_you(ctx, gh, request.repo_id, request.repo, item, "question",
                                "the agent's plan asks a question.", mention=False)
            return "waiting"
        state = planned
        branch = branch_name(request.issue)
        result: AgentResult
        pushed: str | None
        saved = await _saved_result(ctx, request)
        if saved is not None and state.pushed_sha:
            log.info("resuming: this revision was already pushed", sha=state.pushed_sha)
            result, pushed = saved, state.pushed_sha
        else:
            co_author = await _labeler(gh, request.requested_by)
            run = await run_on_branch(
                ctx, gh, repo, branch,
                prompt_for=lambda tree: build_prompt(request.repo, request.issue, issue.get("title", ""),
                                                     issue.get("body") or "", read_instructions(tree),
                                                     extra=state.plan_text),
                message_for=lambda res: commit_message(issue.get("title", ""), request.issue, res, co_author),
                bot=bot, log=log, config=config)
            result, pushed = run.result, run.sha
            if pushed is None:
                reason = result.error or "the agent finished without changing any file"
                await labels.move(gh, request.repo, request.issue, to=None)
                await status.write(replace(state, phase=Phase.FAILED),
                                   f"**Reason:** {defuse.markdown(reason)}.\n\n{_quote(result.summary)}")
                item = await backlog.move(request.issue, ItemState.FAILED, reason=reason)
                await stats.record_failure(ctx["redis"], "implement", request.repo, request.issue, reason,
                                           job=ctx.get("job_id") or "", fix=work_of(request).fix)
                await needs_you(ctx, gh, request.repo_id, request.repo, item, "failed",
                                f"the run failed: {reason}. {RETRY_HINT}")
                return "no changes"
            await _save_result(ctx, request, result)
            state = replace(state, pushed_sha=pushed)
            await status.write(state, "Pushed the agent's work; opening the pull request.")
        body = pull_requests.render_body(request.issue, result, state.revision, request.requested_by)
        pr = await pull_requests.open_or_update(gh, request.repo, branch, repo["default_branch"],
                                                issue.get("title") or f"Issue #{request.issue}", body)
        state = replace(state, phase=Phase.PR_OPENED, pr=pr.number)
        await labels.move(gh, request.repo, request.issue, to=None)
        await status.write(state, _outcome(result))
        item = await backlog.move(request.issue, ItemState.DRAFT, pr=pr.number, reason="waiting for the critique")
        if result.budget_tripped:
            await needs_you(ctx, gh, request.repo_id, request.repo, item, "budget",
                            f"the {result.budget_tripped} budget ran out; #{pr.number} holds the work done so far.")
        log.info("pull request ready", pr=pr.number, created=pr.created, sha=pushed)
        if pushed:  # the webhook for this head would queue it too; the job id makes that the same job
            await enqueue_critique(ctx["redis"], CritiqueRequest(
                installation_id=request.installation_id, repo_id=request.repo_id, repo=request.repo, pr=pr.number,
                head_sha=pushed))
        return f"#{pr.number}"
    except Exception as exc:  # the job's boundary: say what failed where the user looks, then let arq see it
        if failures.is_transient(exc) and ctx.get("job_try", 1) < failures.MAX_TRIES:
            raise failures.retry_later(exc, ctx.get("job_try", 1)) from exc  # noted and logged by failed_work
        await labels.move(gh, request.repo, request.issue, to=None)
        await status.write(replace(state, phase=Phase.FAILED), f"**Reason:** {defuse.markdown(_reason(exc))}")
        item = await backlog.move(request.issue, ItemState.FAILED, reason=_reason(exc))
        await needs_you(ctx, gh, request.repo_id, request.repo, item, "failed",
                        f"the run failed: {_reason(exc)}. {RETRY_HINT}")
        raise


def _outcome(result: AgentResult) -> str:
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


async def _save_result(ctx: dict[str, Any], request: SolveRequest, result: AgentResult) -> None:
    """Keep the agent's summary until the PR shows it: a rerun after a crash post-push must not lose it."""
    await ctx["redis"].set(_result_key(request), json.dumps(asdict(result)), ex=7 * 24 * 3600)


async def _saved_result(ctx: dict[str, Any], request: SolveRequest) -> AgentResult | None:
    raw = await ctx["redis"].get(_result_key(request))
    if not raw:
        return None
    fields = json.loads(raw)  # JSON, not a pickle: what Redis holds must never be able to run code here
    return AgentResult(**{**fields, "not_done": tuple(fields["not_done"])})


def _result_key(request: SolveRequest) -> str:
    return f"{keys.issue_state(request.repo_id, request.issue)}:result:{request.trigger}"


async def _labeler(gh: Any, login: str) -> tuple[str, int] | None:
    """The person who applied the label, for the Co-authored-by trailer."""
    if not login or login.endswith("[bot]"):
        return None
    user = (await gh.rest.users.async_get_by_username(login)).json()
    return login, int(user["id"])
