"""The ``critique_pr`` job: one critique per head commit of a Mull pull request, and what its verdict means.

The job id carries the head SHA, and the critique comment's marker records the SHA it reviewed, so
redeliveries, reruns and both triggers (Mull's own push and the ``synchronize`` webhook) give one critique
per commit, edited into the same comment. ``pass`` lets the PR leave draft once its checks allow; ``fix``
starts a bounded number of automatic revision rounds, after which the PR goes to humans with the
findings still listed.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from githubkit import GitHub
from githubkit.exception import RequestFailed

from bot.jobs import CritiqueRequest, ReviseRequest, enqueue_revise
from bot.settings import MullSettings
from worker import backlog as backlogs
from worker import defuse, failures, readiness, release, stats
from worker.agent.base import Budget, ModelAccess
from worker.agent.prompt import INSTRUCTION_FILES, INSTRUCTION_LIMIT
from worker.backlog import Limits
from worker.backlog_jobs import touch
from worker.backlog_state import ItemState
from worker.branch_work import new_run_id, sandbox_for
from worker.critique.comment import read_marker, render_comment, render_failure
from worker.critique.diff import GIT_DIFF_ARGS, from_git_diff
from worker.critique.prompt import build_within_budget
from worker.critique.review import split_findings
from worker.critique.run import CritiqueFailed, CritiqueTask, make_critic
from worker.critique.schema import Critique
from worker.failed_work import work_of
from worker.gateway import ModelGateway
from worker.github_app import GitHubApp
from worker.github_pages import every
from worker.installations import pause_if_suspended
from worker.needs_you import needs_you
from worker.pull_ownership import mull_issue
from worker.pull_state import FIX_ROUNDS, PullState
from worker.repo_cache import RepoCache, git
from worker.repo_settings import config_for
from worker.status import StatusComment


def critique_budget(settings: MullSettings) -> Budget:
    return Budget(seconds=settings.critique_timeout, steps=settings.critique_max_steps,
                  tokens=settings.critique_max_tokens, command_seconds=settings.command_timeout)


async def critique_pr(ctx: dict[str, Any], request: CritiqueRequest) -> str:
    await pause_if_suspended(ctx, request.installation_id)
    gh = ctx["github"].installation(request.installation_id, request.repo_id)
    async with gh:
        return await failures.retrying(ctx, _critique(ctx, request, gh))


async def _critique(ctx: dict[str, Any], request: CritiqueRequest, gh: GitHub) -> str:
    settings: MullSettings = ctx["settings"]
    app: GitHubApp = ctx["github"]
    cache: RepoCache = ctx["repos"]
    log = ctx["log"].bind(job_id=ctx.get("job_id"), repo=request.repo, pr=request.pr, sha=request.head_sha)
    owner, name = request.repo.split("/", 1)
    pull: Any = (await gh.rest.pulls.async_get(owner, name, request.pr)).json()
    if pull["state"] != "open" or pull["head"]["sha"] != request.head_sha:
        return "superseded"  # a newer head has (or will have) its own critique
    bot = await app.identity(gh)
    issue = mull_issue(pull, bot.login)
    if issue is None:
        return "not a Mull pull request"
    config = await config_for(ctx, gh, request.repo, request.repo_id, request.installation_id)
    await backlogs.of(ctx, request.repo_id).remember_repo(request.installation_id, request.repo, Limits.of(config))
    comment_id, previous = await find_comment(gh, request.repo, request.pr, bot.login)
    if previous is not None and previous.sha == request.head_sha and not request.force:
        return "already critiqued"
    repo = pull["base"]["repo"]
    mirror = await cache.fetch(request.repo_id, repo["clone_url"], await app.token(gh))
    base = (await git("merge-base", f"refs/remotes/origin/{pull['base']['ref']}", request.head_sha,
                      git_dir=mirror)).strip()
    files = from_git_diff(await git(*GIT_DIFF_ARGS, base, request.head_sha, git_dir=mirror))
    instructions = await _instructions_at(mirror, base)  # the base's: a PR must not steer its own critic
    prompt, selection = build_within_budget(request.repo, request.pr, pull["title"], pull.get("body") or "",
                                            files, instructions, budget_tokens=settings.critique_prompt_tokens)
    async with cache.run_tree(request.repo_id, f"{request.repo_id}-pr{request.pr}-critique",
                              request.head_sha) as run:  # a plain tree of the head; the critic only reads it
        critic = make_critic(settings.critique_command, settings.llm_base_url or "")
        budget = critique_budget(settings)
        gateway: ModelGateway = ctx["gateway"]
        run_id = new_run_id("critique", request.repo_id, f"pr{request.pr}")
        log.info("critique starting", files=len(files), reviewed=len(selection.included), run=run_id)
        started = time.monotonic()
        async with gateway.run(run_id, config.models.critique or settings.critique_model or settings.llm_model or "",
                               budget.steps, budget.tokens) as grant:
            outcome = await critic.critique(CritiqueTask(prompt=prompt, worktree=run.tree, files=files,
                                                         sandbox=sandbox_for(settings, run),
                                                         model=ModelAccess(gateway.socket_path, grant)), budget)
    await stats.record_run(ctx["redis"], "critique", "failed" if isinstance(outcome, CritiqueFailed)
                           else outcome.critique.verdict, time.monotonic() - started, outcome.tokens)
    if isinstance(outcome, CritiqueFailed):
        log.warning("critique failed", reason=outcome.reason)
        await stats.record_failure(ctx["redis"], "critique", request.repo, request.pr, outcome.reason,
                                   job=ctx.get("job_id") or "", fix=work_of(request).fix)
        await write_comment(gh, request.repo, request.pr, comment_id, render_failure(outcome.reason,
                                                                                     request.head_sha))
        await note_on_issue(ctx, gh, request, bot.login, f"Critique of `{request.head_sha[:12]}`: "
                                                        f"{defuse.markdown(outcome.reason)}.")
        item = await backlogs.of(ctx, request.repo_id).move(issue, ItemState.FAILED, pr=request.pr, reason=(
            f"critique failed: {outcome.reason}"))
        await touch(ctx, request.installation_id, request.repo_id, request.repo)
        await needs_you(ctx, gh, request.repo_id, request.repo, item, "failed",
                        f"the critique of #{request.pr} failed: {outcome.reason}. Comment `/mull critique` on "
                        "the pull request to run it again.")
        return "critique failed"
    critique = outcome.critique
    next_step = await _verdict(ctx, gh, request, pull, issue, critique, config.max_fix_rounds, log)
    await write_comment(gh, request.repo, request.pr, comment_id,
                        render_comment(critique, request.head_sha, selection, next_step))
    await _post_inline(gh, request, critique, files, bot.login, log)
    await note_on_issue(ctx, gh, request, bot.login, f"Critique of #{request.pr}: **{critique.verdict}**, review "
                                                    f"effort {critique.effort}/5. {next_step}")
    log.info("critique done", verdict=critique.verdict, effort=critique.effort, findings=len(critique.findings))
    return critique.verdict


async def _verdict(ctx: dict[str, Any], gh: GitHub, request: CritiqueRequest, pull: Any, issue: int,
                   critique: Critique, max_rounds: int, log: Any) -> str:
    """Act on the verdict; return the line the comment shows about what happens next."""
    if critique.verdict == "fix":
        spent = await PullState(ctx["redis"], request.repo_id, request.pr).spend(FIX_ROUNDS, max_rounds)
        if spent is not None:
            notes = findings_for_agent(critique)
            await enqueue_revise(ctx["redis"], ReviseRequest(
                installation_id=request.installation_id, repo_id=request.repo_id, repo=request.repo,
                pr=request.pr, reason="critique", notes=notes, requested_by=""), f"critique-{request.head_sha[:12]}")
            backlog = backlogs.of(ctx, request.repo_id)
            if issue not in await backlog.ready():
                await backlog.move(issue, ItemState.DRAFT, effort=critique.effort,
                                   reason=f"automatic revision {spent} of {max_rounds}")
                await touch(ctx, request.installation_id, request.repo_id, request.repo)
            return f"Verdict `fix`: automatic revision round {spent} of {max_rounds} started."
        handed = (f"Verdict `fix`, and the {max_rounds} automatic revision round(s) are used up: "
                  "over to human review, with the findings above still open.")
        return handed + await _release(ctx, gh, request, pull, issue, critique.effort, log)
    return "Verdict `pass`." + await _release(ctx, gh, request, pull, issue, critique.effort, log)


async def _release(ctx: dict[str, Any], gh: GitHub, request: CritiqueRequest, pull: Any, issue: int,
                   effort: int | None, log: Any) -> str:
    """Finished: offer it for review once its checks allow (the review line decides when it leaves draft)."""
    checks = await readiness.checks_state(gh, request.repo, request.head_sha)
    if checks in ("passed", "none"):
        return await _offer(ctx, gh, request.installation_id, request.repo_id, request.repo, pull, issue, effort)
    backlog = backlogs.of(ctx, request.repo_id)
    if issue not in await backlog.ready():  # out for review already: it stays listed so
        await backlog.move(issue, ItemState.DRAFT, effort=effort, reason=(
            "waiting for its checks" if checks == "pending" else "its checks fail"))
    if checks == "pending":
        return " It leaves draft once its checks pass."
    return " Its checks are failing, so it stays a draft."


async def _offer(ctx: dict[str, Any], gh: GitHub, installation_id: int, repo_id: int, repo: str, pull: Any,
                 issue: int, effort: int | None) -> str:
    backlog = backlogs.of(ctx, repo_id)
    item = await backlog.get(issue)
    limits = await backlog.limits()
    candidates = await release.reviewer_candidates(gh, repo, int(pull["number"]), limits.reviewers,
                                                   item.labeled_by if item else "", pull["base"]["ref"])
    said = await release.offer(ctx, gh, installation_id, repo_id, repo, issue, int(pull["number"]), effort,
                               candidates)
    await touch(ctx, installation_id, repo_id, repo)
    return said


async def maybe_release(ctx: dict[str, Any], gh: GitHub, repo: str, pr: int, installation_id: int, bot_login: str,
                        log: Any) -> str:
    """After checks complete: offer it for review when the current head's critique allows it."""
    owner, name = repo.split("/", 1)
    pull: Any = (await gh.rest.pulls.async_get(owner, name, pr)).json()
    issue = mull_issue(pull, bot_login)
    if issue is None:
        return "not a Mull pull request"
    _, marker = await find_comment(gh, repo, pr, bot_login)
    if marker is None or marker.sha != pull["head"]["sha"] or marker.verdict == "failed":
        return "no critique of this head yet"
    repo_id = int(pull["base"]["repo"]["id"])
    if marker.verdict == "fix":
        config = await config_for(ctx, gh, repo, repo_id, installation_id)
        rounds = await PullState(ctx["redis"], repo_id, pr).count(FIX_ROUNDS)
        if rounds < config.max_fix_rounds:
            return "a fix round is pending"
    if await readiness.checks_state(gh, repo, pull["head"]["sha"]) in ("passed", "none"):
        said = await _offer(ctx, gh, installation_id, repo_id, repo, pull, issue, marker.effort)
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


async def find_comment(gh: GitHub, repo: str, pr: int, bot_login: str) -> tuple[int | None, Any]:
    """Mull's critique comment on the PR (id and marker), if there is one."""
    owner, name = repo.split("/", 1)
    async for comment in every(gh.rest.issues.async_list_comments, owner, name, pr):
        marker = read_marker(comment, bot_login)
        if marker is not None:
            return int(comment["id"]), marker
    return None, None


async def write_comment(gh: GitHub, repo: str, pr: int, comment_id: int | None, body: str) -> None:
    owner, name = repo.split("/", 1)
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
    owner, name = request.repo.split("/", 1)
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


async def note_on_issue(ctx: dict[str, Any], gh: GitHub, request: CritiqueRequest | Any, bot_login: str,
                       line: str) -> None:
    """Add the critique's outcome to the issue's status comment (queued → working → PR → critique)."""
    owner, name = request.repo.split("/", 1)
    pull: Any = (await gh.rest.pulls.async_get(owner, name, request.pr)).json()
    issue = mull_issue(pull, bot_login)
    if issue is None:
        return
    status = StatusComment(gh, request.repo, request.repo_id, issue, bot_login, ctx["redis"])
    state = await status.load()
    if status.comment_id is None:
        return
    await status.write(replace(state, critique=line))
