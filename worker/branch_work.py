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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot import keys
from bot.settings import MullSettings
from worker import stats
from worker.agent import make_agent
from worker.agent.base import AgentResult, AgentTask, Budget, ModelAccess
from worker.agent.sandbox import SandboxSpec
from worker.gateway import ModelGateway
from worker.github_app import BotIdentity, GitHubApp
from worker.job_boundary import JobRun
from worker.redis_reply import reply
from worker.repo_cache import RepoCache, RunTree, push
from worker.repo_config import RepoConfig
from worker.tree_commit import commit


@dataclass(frozen=True)
class BranchRun:
    result: AgentResult
    sha: str | None  # the pushed commit; None when the agent changed nothing
    base_sha: str | None  # the branch head the run started from (None: the branch did not exist)


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
                        stage: str = "implement") -> BranchRun:
    """Run the agent on ``branch`` and push what it changed; the token never enters the run's tree."""
    svc, gh, log = job.svc, job.gh, job.log
    settings: MullSettings = svc.settings
    app: GitHubApp = svc.github
    cache: RepoCache = svc.repos
    repo_id = int(repo["id"])
    mirror = await cache.fetch(repo_id, repo["clone_url"], await app.token(gh))
    remote = await cache.remote_sha(mirror, branch)
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
        if sha is not None:
            # A fresh token: the run may have been long.
            await push(mirror, repo["clone_url"], sha, branch, remote, await app.token(gh))
    outcome = ("budget-tripped" if result.budget_tripped else "error" if result.error and sha is None
               else "pushed" if sha else "no-changes")
    await stats.record_run(svc.redis, stage, outcome, time.monotonic() - started, result.tokens)
    return BranchRun(result=result, sha=sha, base_sha=remote)
