"""One agent run on a Mull branch: fetch → plain tree → agent → Mull's commit → push by SHA.

Shared by the first run on an issue and by every later revision of its pull request, so that the rules
about where work starts (the branch as pushed, else the default branch), what the agent may see and how
Mull pushes live in one place.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from githubkit import GitHub

from bot import keys
from bot.settings import MullSettings
from worker import kept_run, stats
from worker.agent import make_agent
from worker.agent.base import AgentResult, AgentTask, Budget, ModelAccess
from worker.agent.sandbox import SandboxSpec
from worker.gateway import ModelGateway
from worker.github_app import BotIdentity, GitHubApp
from worker.job_boundary import JobRun
from worker.kept_run import BranchRun
from worker.redis_reply import reply
from worker.repo_cache import RepoCache, RunTree, push
from worker.repo_config import RepoConfig
from worker.tree_commit import commit


def agent_budget(settings: MullSettings, config: RepoConfig) -> Budget:
    """The repository's budgets (its .github/mull.yml over the MULL_AGENT_* defaults)."""
    return Budget(seconds=config.budgets.seconds, steps=config.budgets.steps, tokens=config.budgets.tokens,
                  command_seconds=settings.command_timeout)


def new_run_id(stage: str, repo_id: int, what: str) -> str:
    """A name for one agent run, unique across reruns: the gateway's token and transcript are keyed by it."""
    return f"{stage}-{repo_id}-{what.replace('/', '-')}-{uuid.uuid4().hex[:10]}"


def budget_of(settings: MullSettings) -> Budget:
    return Budget(seconds=settings.agent_timeout, steps=settings.agent_max_steps,
                  tokens=settings.agent_max_tokens, command_seconds=settings.command_timeout)


def sandbox_for(settings: MullSettings, run: RunTree) -> SandboxSpec:
    """Commands see the run's tree read-write, the operator's read-only paths, and nothing of Mull's: no
    mirror, no git dir of Mull's, no data dir, no key file."""
    return SandboxSpec(enabled=settings.sandbox, ro_paths=tuple(settings.sandbox_ro_paths))


async def run_on_branch(job: JobRun, repo: dict[str, Any], branch: str, prompt_for: Callable[[Path], str],
                        message_for: Callable[[AgentResult], str], bot: BotIdentity, config: RepoConfig,
                        stage: str = "implement", keep_as: str | None = None) -> BranchRun:
    """Run the agent on ``branch`` and push what it changed; the token never enters the run's tree.

    With ``keep_as`` (a Redis key naming this run across the job's tries), the result and commit are kept
    there before the push, and a later try that finds them pushes that commit instead of running the agent
    again (``worker/kept_run.py``)."""
    svc, gh, log = job.svc, job.gh, job.log
    app: GitHubApp = svc.github
    cache: RepoCache = svc.repos
    repo_id = int(repo["id"])
    mirror = await cache.fetch(repo_id, repo["clone_url"], await app.token(gh))
    remote = await cache.remote_sha(mirror, branch)
    earlier = await kept_run.kept(svc.redis, keep_as) if keep_as else None
    if earlier is not None and await _resume(app, gh, cache, mirror, repo, branch, remote, earlier, log):
        return kept_run.resumed(earlier)
    return await _run(job, repo, branch, mirror, remote, prompt_for, message_for, bot, config, stage, keep_as)


async def _resume(app: GitHubApp, gh: GitHub, cache: RepoCache, mirror: Path, repo: dict[str, Any], branch: str,
                  remote: str | None, earlier: BranchRun, log: Any) -> bool:
    """Finish an earlier try's run: push its commit unless it landed; False when it cannot be used."""
    if earlier.sha is None or remote == earlier.sha:
        log.info("resuming an earlier try's agent run", sha=earlier.sha, pushed=earlier.sha is not None)
        return True
    if remote != earlier.base_sha:
        log.warning("an earlier try's agent run is stale: the branch moved since; running the agent again",
                    branch=branch, kept_base=earlier.base_sha, now=remote)
        return False
    if not await cache.has_commit(mirror, earlier.sha):
        log.info("an earlier try's commit is not in this machine's mirror; running the agent again",
                 sha=earlier.sha)
        return False
    await push(mirror, repo["clone_url"], earlier.sha, branch, remote, await app.token(gh))
    log.info("resuming an earlier try's agent run: pushed its commit", sha=earlier.sha)
    return True


async def _run(job: JobRun, repo: dict[str, Any], branch: str, mirror: Path, remote: str | None,
               prompt_for: Callable[[Path], str], message_for: Callable[[AgentResult], str], bot: BotIdentity,
               config: RepoConfig, stage: str, keep_as: str | None) -> BranchRun:
    svc, gh, log = job.svc, job.gh, job.log
    settings: MullSettings = svc.settings
    app: GitHubApp = svc.github
    cache: RepoCache = svc.repos
    repo_id = int(repo["id"])
    start = remote or f"refs/remotes/origin/{repo['default_branch']}"
    started = time.monotonic()
    command = config.agent_command or settings.agent_command
    # A CLI agent gets a disposable repository of its own in the tree (git diff, aider); Mull never reads it.
    async with cache.run_tree(repo_id, f"{repo_id}-{branch.replace('/', '-')}", start,
                              agent_repo=bool(command)) as run:
        agent = make_agent(command, settings.llm_base_url or "")
        budget = agent_budget(settings, config)
        gateway: ModelGateway = svc.gateway
        run_id = new_run_id(stage, repo_id, branch)
        log.info("agent starting", branch=branch, start=remote or repo["default_branch"], run=run_id)
        try:
            async with gateway.run(run_id, config.models.implement or settings.llm_model or "", budget.steps,
                                   budget.tokens) as grant:
                result = await agent.run(AgentTask(prompt=prompt_for(run.tree), worktree=run.tree,
                                                   sandbox=sandbox_for(settings, run),
                                                   model=ModelAccess(gateway.socket_path, grant)), budget)
        except asyncio.CancelledError:
            # `/mull stop` aborts the job: keep what the agent did. Any other cancellation (a worker
            # shutting down) propagates, and the run is redone elsewhere.
            stopper = await reply(svc.redis.get(keys.stop_flag(repo_id, job.job_id)))
            if not stopper:
                raise
            who = stopper.decode()
            result = AgentResult(summary=f"Stopped by @{who} with `/mull stop`; this is the work done until then.",
                                 not_done=(), budget_tripped=None, error=f"stopped by @{who}", steps=0, tokens=0)
        log.info("agent finished", steps=result.steps, tokens=result.tokens,
                 budget_tripped=result.budget_tripped, error=result.error)
        sha = await commit(run, message_for(result), bot.login, bot.email)
        done = BranchRun(result=result, sha=sha, base_sha=remote)
        if keep_as:  # before the push: a kill from here on resumes with this, not with a second agent run
            await kept_run.keep(svc.redis, keep_as, done)
            log.info("agent result kept", run=run_id, sha=sha)
        if sha is not None:
            # A fresh token: the run may have been long.
            await push(mirror, repo["clone_url"], sha, branch, remote, await app.token(gh))
    outcome = ("budget-tripped" if result.budget_tripped else "error" if result.error and sha is None
               else "pushed" if sha else "no-changes")
    await stats.record_run(svc.redis, stage, outcome, time.monotonic() - started, result.tokens)
    return done
