"""The ``critique_pr`` job: one critique per head commit of a Mull pull request, and what its verdict means.

The job id carries the head SHA, and the critique comment's marker records the SHA it reviewed, so
redeliveries, reruns and both triggers (Mull's own push and the ``synchronize`` webhook) give one critique
per commit, edited into the same comment. ``pass`` lets the PR leave draft once its checks allow; ``fix``
starts a bounded number of automatic revision rounds, after which the PR goes to humans with the
findings still listed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from githubkit import GitHub
from githubkit.exception import RequestFailed

from bot.jobs import CritiqueRequest, RepoRef, ReviseRequest, enqueue_revise
from bot.settings import MullSettings
from worker import lifecycle
from worker.agent import model_stack
from worker.agent.base import Budget, ModelAccess
from worker.agent.project_commands import ProjectRun
from worker.agent.prompt import INSTRUCTION_FILES, INSTRUCTION_LIMIT
from worker.backlog import readiness, release
from worker.backlog import store as backlogs
from worker.backlog.pull_state import FIX_ROUNDS, PullState
from worker.backlog.store import Limits
from worker.critique.comment import read_marker, render_comment, render_failure
from worker.critique.diff import GIT_DIFF_ARGS, from_git_diff
from worker.critique.prompt import build_within_budget
from worker.critique.review import split_findings
from worker.critique.run import CritiqueFailed, CritiqueTask, make_critic
from worker.critique.schema import Critique
from worker.critique.tests_section import tests_section
from worker.gateway import ModelGateway
from worker.github.app import GitHubApp
from worker.github.pages import every
from worker.github.pull_ownership import mull_issue
from worker.jobs import test_run
from worker.jobs.boundary import JobRun, job_boundary
from worker.jobs.branch_work import new_run_id, sandbox_for
from worker.jobs.budget_hold import hold_while_spent
from worker.jobs.failed_work import work_of
from worker.jobs.services import Services
from worker.lifecycle import Alert, IssueLifecycle, Stage
from worker.ops import spend, stats
from worker.repo_config.settings import config_for
from worker.sessions import record as sessions
from worker.trees.repo_cache import RepoCache, git
from worker.views import command_output, defuse


def critique_budget(settings: MullSettings) -> Budget:
    return Budget(seconds=settings.critique_timeout, steps=settings.critique_max_steps,
                  tokens=settings.critique_max_tokens, command_seconds=settings.command_timeout)


async def critique_pr(ctx: dict[str, Any], request: CritiqueRequest) -> str:
    async with job_boundary(ctx, request.ref, pr=request.pr, sha=request.head_sha) as job:
        return await _critique(job, request)


async def _critique(job: JobRun, request: CritiqueRequest) -> str:
    svc, gh, log = job.svc, job.gh, job.log
    settings: MullSettings = svc.settings
    app: GitHubApp = svc.github
    cache: RepoCache = svc.repos
    owner, name = request.ref.owner, request.ref.name
    pull: Any = (await gh.rest.pulls.async_get(owner, name, request.pr)).json()
    if pull["state"] != "open" or pull["head"]["sha"] != request.head_sha:
        return "superseded"  # a newer head has (or will have) its own critique
    bot = await app.identity(gh)
    issue = mull_issue(pull, bot.login)
    if issue is None:
        return "not a Mull pull request"
    config = await config_for(svc, gh, request.ref)
    issue_run = lifecycle.of(svc, gh, request.ref, issue, bot.login)
    await backlogs.of(svc, request.repo_id).remember_repo(request.installation_id, request.repo, Limits.of(config))
    comment_id, previous = await find_comment(gh, request.ref, request.pr, bot.login)
    if previous is not None and previous.sha == request.head_sha and not request.force:
        return "already critiqued"
    await hold_while_spent(job, issue_run, f"The critique of #{request.pr}")
    repo = pull["base"]["repo"]
    mirror = await cache.fetch(request.repo_id, repo["clone_url"], await app.token(gh))
    base = (await git("merge-base", f"refs/remotes/origin/{pull['base']['ref']}", request.head_sha,
                      git_dir=mirror)).strip()
    files = from_git_diff(await git(*GIT_DIFF_ARGS, base, request.head_sha, git_dir=mirror))
    instructions = await _instructions_at(mirror, base)  # the base's: a PR must not steer its own critic
    tests = await test_run.of(svc.redis, request.repo_id, request.head_sha)
    prompt, selection = build_within_budget(request.repo, request.pr, pull["title"], pull.get("body") or "",
                                            files, instructions, budget_tokens=settings.critique_prompt_tokens,
                                            extra=tests_section(tests, config.test))
    async with cache.run_tree(request.repo_id, f"{request.repo_id}-pr{request.pr}-critique", request.head_sha,
                              spare_branch=pull["base"]["ref"]) as run:  # the head's files; the critic only reads
        await model_stack.load()  # off the event loop (worker/agent/model_stack.py)
        critic = make_critic(settings.critique_command, settings.llm_base_url or "")
        budget = critique_budget(settings)
        gateway: ModelGateway = svc.gateway
        run_id = new_run_id("critique", request.repo_id, f"pr{request.pr}")
        log.info("critique starting", files=len(files), reviewed=len(selection.included), run=run_id)
        started, started_at = time.monotonic(), time.time()
        model = config.models.critique or settings.critique_model or settings.llm_model or ""
        async with gateway.run(run_id, model, budget.steps, budget.tokens) as grant:
            outcome = await critic.critique(CritiqueTask(prompt=prompt, worktree=run.tree, files=files,
                                                         sandbox=sandbox_for(settings, run),
                                                         model=ModelAccess(gateway.socket_path, grant)), budget)
        # Where every critique ends: its session is kept, and the comment links to it.
        ending = (f"failed: {outcome.reason}" if isinstance(outcome, CritiqueFailed)
                  else f"verdict {outcome.critique.verdict}, review effort {outcome.critique.effort}/5")
        session_url = sessions.link(settings, await sessions.keep(svc, sessions.gateway_session(
            run_id, "critique", request.repo_id, request.repo, f"pull request #{request.pr}", started_at,
            grant.transcript, ending), log))
    used = grant.usage
    await spend.record(svc.redis, settings.prices, installation_id=request.installation_id, repo_id=request.repo_id,
                       issue=issue, model=model, input_tokens=used.input_tokens, output_tokens=used.output_tokens)
    await stats.record_run(svc.redis, "critique", "failed" if isinstance(outcome, CritiqueFailed)
                           else outcome.critique.verdict, time.monotonic() - started, outcome.tokens)
    if isinstance(outcome, CritiqueFailed):
        log.warning("critique failed", reason=outcome.reason)
        await stats.record_failure(svc.redis, "critique", request.repo, request.pr, outcome.reason,
                                   job=job.job_id, fix=work_of(request).fix)
        await write_comment(gh, request.ref, request.pr, comment_id, render_failure(outcome.reason,
                                                                                     request.head_sha, session_url))
        await issue_run.move(
            Stage.FAILED, yield_to_run=True, pr=request.pr, reason=f"critique failed: {outcome.reason}",
            critique=f"Critique of `{request.head_sha[:12]}`: {defuse.markdown(outcome.reason)}.",
            alert=Alert("failed", f"the critique of #{request.pr} failed: {outcome.reason}. Comment `/mull critique` "
                                  "on the pull request to run it again."))
        return "critique failed"
    critique = outcome.critique
    if await issue_run.stage() in (Stage.FAILED, Stage.DONE):  # its pull request is open and critiqued again
        await issue_run.move(Stage.DRAFT, retry=True, pr=request.pr, reason="critiqued again")
    next_step = await _verdict(svc, gh, request, pull, issue_run, critique, config.max_fix_rounds, tests)
    await write_comment(gh, request.ref, request.pr, comment_id,
                        render_comment(critique, request.head_sha, selection, next_step, session_url))
    await _post_inline(gh, request, critique, files, bot.login, log)
    await issue_run.note(f"Critique of #{request.pr}: **{critique.verdict}**, review effort {critique.effort}/5. "
                         f"{next_step}")
    log.info("critique done", verdict=critique.verdict, effort=critique.effort, findings=len(critique.findings))
    return critique.verdict


async def _verdict(svc: Services, gh: GitHub, request: CritiqueRequest, pull: Any, issue_run: IssueLifecycle,
                   critique: Critique, max_rounds: int, tests: ProjectRun | None) -> str:
    """Act on the verdict; return the line the comment shows about what happens next."""
    if critique.verdict == "fix":
        spent = await PullState(svc.redis, request.repo_id, request.pr).spend(FIX_ROUNDS, max_rounds)
        if spent is not None:
            notes = findings_for_agent(critique)
            await enqueue_revise(svc.redis, ReviseRequest(
                installation_id=request.installation_id, repo_id=request.repo_id, repo=request.repo,
                pr=request.pr, reason="critique", notes=notes, requested_by=""), f"critique-{request.head_sha[:12]}")
            if issue_run.issue not in await issue_run.backlog.ready():
                await issue_run.move(Stage.DRAFT, yield_to_run=True, effort=critique.effort,
                                     reason=f"automatic revision {spent} of {max_rounds}")
            return f"Verdict `fix`: automatic revision round {spent} of {max_rounds} started."
        handed = (f"Verdict `fix`, and the {max_rounds} automatic revision round(s) are used up: "
                  "over to human review, with the findings above still open.")
        return handed + await _release(gh, request, pull, issue_run, critique.effort, tests)
    return "Verdict `pass`." + await _release(gh, request, pull, issue_run, critique.effort, tests)


async def _release(gh: GitHub, request: CritiqueRequest, pull: Any, issue_run: IssueLifecycle,
                   effort: int | None, tests: ProjectRun | None) -> str:
    """Finished: offer it for review once its checks allow (the review line decides when it leaves draft).

    A head whose own test run (Mull's, ``worker/jobs/test_run.py``) failed is never offered: it stays a draft."""
    if tests is not None and not tests.ok:
        if issue_run.issue not in await issue_run.backlog.ready():
            await issue_run.move(Stage.DRAFT, yield_to_run=True, effort=effort, reason="Mull's test run failed")
        return (f" Mull's run of the tests ({command_output.code_span(tests.command)}) failed, so it stays a "
                "draft.")
    checks = await readiness.checks_state(gh, request.ref, request.head_sha)
    if checks in ("passed", "none"):
        return await _offer(gh, pull, issue_run, effort)
    if issue_run.issue not in await issue_run.backlog.ready():  # out for review already: it stays listed so
        await issue_run.move(Stage.DRAFT, yield_to_run=True, effort=effort, reason=(
            "waiting for its checks" if checks == "pending" else "its checks fail"))
    if checks == "pending":
        return " It leaves draft once its checks pass."
    return " Its checks are failing, so it stays a draft."


async def _offer(gh: GitHub, pull: Any, issue_run: IssueLifecycle, effort: int | None) -> str:
    item = await issue_run.backlog.get(issue_run.issue)
    limits = await issue_run.backlog.limits()
    candidates = await release.reviewer_candidates(gh, issue_run.repo, int(pull["number"]),
                                                   limits.reviewers, item.labeled_by if item else "",
                                                   pull["base"]["ref"])
    return await release.offer(issue_run, int(pull["number"]), effort, candidates)


async def maybe_release(svc: Services, gh: GitHub, repo: RepoRef, pr: int, bot_login: str, log: Any) -> str:
    """After checks complete: offer it for review when the current head's critique allows it."""
    pull: Any = (await gh.rest.pulls.async_get(repo.owner, repo.name, pr)).json()
    issue = mull_issue(pull, bot_login)
    if issue is None:
        return "not a Mull pull request"
    _, marker = await find_comment(gh, repo, pr, bot_login)
    if marker is None or marker.sha != pull["head"]["sha"] or marker.verdict == "failed":
        return "no critique of this head yet"
    if marker.verdict == "fix":
        config = await config_for(svc, gh, repo)
        rounds = await PullState(svc.redis, repo.repo_id, pr).count(FIX_ROUNDS)
        if rounds < config.max_fix_rounds:
            return "a fix round is pending"
    tests = await test_run.of(svc.redis, repo.repo_id, pull["head"]["sha"])
    if tests is not None and not tests.ok:
        return "Mull's test run failed"
    if await readiness.checks_state(gh, repo, pull["head"]["sha"]) in ("passed", "none"):
        issue_run = lifecycle.of(svc, gh, repo, issue, bot_login)
        said = await _offer(gh, pull, issue_run, marker.effort)
        log.info("offered for review after checks passed", pr=pr, said=said.strip())
        return "offered"
    return "checks not green"


def findings_for_agent(critique: Critique) -> str:
    lines = ["The automatic critique of this pull request found problems to fix:", ""]
    for n, f in enumerate(critique.findings, start=1):
        lines.append(f"{n}. {f.path} lines {f.start_line}-{f.end_line} ({f.severity}): {f.title}. "
                     f"Why: {f.why} Suggested fix: {f.suggestion}")
    for risk in critique.security:
        lines.append(f"- Security: {risk}")
    return "\n".join(lines)


async def find_comment(gh: GitHub, repo: RepoRef, pr: int, bot_login: str) -> tuple[int | None, Any]:
    """Mull's critique comment on the PR (id and marker), if there is one."""
    owner, name = repo.owner, repo.name
    async for comment in every(gh.rest.issues.async_list_comments, owner, name, pr):
        marker = read_marker(comment, bot_login)
        if marker is not None:
            return int(comment["id"]), marker
    return None, None


async def write_comment(gh: GitHub, repo: RepoRef, pr: int, comment_id: int | None, body: str) -> None:
    owner, name = repo.owner, repo.name
    if comment_id is not None:
        try:
            await gh.rest.issues.async_update_comment(owner, name, comment_id, body=body)
            return
        except RequestFailed as exc:
            if exc.response.status_code != 404:
                raise
    await gh.rest.issues.async_create_comment(owner, name, pr, body=body)


async def _post_inline(gh: GitHub, request: CritiqueRequest, critique: Critique, files: Any, bot_login: str,
                       log: Any) -> None:
    """Findings on changed lines become one review with inline comments, once per head commit."""
    split = split_findings(critique, files)
    if not split.inline:
        return
    owner, name = request.ref.owner, request.ref.name
    reviews: Any = (await gh.rest.pulls.async_list_reviews(owner, name, request.pr, per_page=100)).json()
    if any((r.get("user") or {}).get("login") == bot_login and r.get("commit_id") == request.head_sha
           for r in reviews):
        return
    try:
        await gh.rest.pulls.async_create_review(owner, name, request.pr, commit_id=request.head_sha, event="COMMENT",
                                                body="Mull critique: findings on changed lines.",
                                                comments=list(split.inline))  # type: ignore[arg-type]
    except RequestFailed as exc:
        if exc.response.status_code != 422:
            raise
        log.warning("inline comments refused; they stay in the critique comment", error=str(exc)[:200])


async def _instructions_at(mirror: Path, commit: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for path in INSTRUCTION_FILES:
        text = await git("show", "--no-textconv", f"{commit}:{path}", git_dir=mirror, check=False)
        if text:
            found[path] = text[:INSTRUCTION_LIMIT]
    return found
