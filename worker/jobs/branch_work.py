"""One agent run on a Mull branch: fetch → plain tree → agent → Mull's commit → push by SHA.

Shared by the first run on an issue and by every later revision of its pull request, so that the rules
about where work starts (the branch as pushed, else the default branch), what the agent may see and how
Mull pushes live in one place.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from githubkit import GitHub

from bot import keys
from bot.jobs import issue_of_branch
from bot.settings import MullSettings
from worker.agent import make_agent, model_stack
from worker.agent.base import AgentResult, AgentTask, Budget, ModelAccess
from worker.agent.project_commands import SetupFailed, run_tests, setup_through_proxy
from worker.agent.sandbox import SandboxSpec
from worker.backlog import budget as installation_budget
from worker.egress import egress_proxy, for_agent
from worker.egress.session import merged
from worker.gateway import ModelGateway, RunGrant
from worker.github import base_branch
from worker.github.app import BotIdentity, GitHubApp
from worker.jobs import kept_run, test_run
from worker.jobs.boundary import JobRun
from worker.jobs.kept_run import BranchRun
from worker.ops import spend, stats
from worker.ops.redis_reply import reply
from worker.repo_config import RepoConfig
from worker.sessions import record as sessions
from worker.trees.env_cache import EnvCache, Stored
from worker.trees.env_key import env_key, toolchain
from worker.trees.repo_cache import RepoCache, RunTree, git, push
from worker.trees.setup_marks import SetupMarks
from worker.trees.tree_commit import base_entries, commit, mark_setup


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


class BaseMissing(Exception):
    """The base branch chosen for the run is not in the repository; the message says which and the fix."""


async def run_on_branch(job: JobRun, repo: dict[str, Any], branch: str, prompt_for: Callable[[Path], str],
                        message_for: Callable[[AgentResult], str], bot: BotIdentity, config: RepoConfig,
                        stage: str = "implement", keep_as: str | None = None, base: str | None = None,
                        restart: bool = False,
                        start_from: Callable[[Path], Awaitable[str | None]] | None = None,
                        subject: str = "", fetched: Awaitable[Path] | None = None) -> BranchRun:
    """Run the agent on ``branch`` and push what it changed; the token never enters the run's tree.

    The repository's ``setup:`` runs first (SetupFailed, and no agent run, when it fails), and its ``test:``
    runs on the committed tree afterwards, its result kept by commit SHA (``worker/jobs/test_run.py``).

    Work starts from ``branch`` as pushed, or from ``base`` (default: the repository's default branch) when
    the branch does not exist yet or ``restart`` says its work was built on another base. ``start_from`` (given
    Mull's mirror) may name another commit to start from: a base update's merge, conflicts and all.

    With ``keep_as`` (a Redis key naming this run across the job's tries), the result and commit are kept
    there before the push, and a later try that finds them pushes that commit instead of running the agent
    again (``worker/jobs/kept_run.py``).

    ``fetched``: the mirror's fetch when the caller started it already (``prefetch``)."""
    svc, gh, log = job.svc, job.gh, job.log
    app: GitHubApp = svc.github
    cache: RepoCache = svc.repos
    repo_id = int(repo["id"])
    mirror = await (fetched or cache.fetch(repo_id, repo["clone_url"], await app.token(gh)))
    base = base_branch.checked(base or repo["default_branch"])
    heads = await cache.remote_shas(mirror, branch, base)
    remote = heads[branch]
    if (remote is None or restart) and heads[base] is None:
        raise BaseMissing(f"the base branch `{base_branch.shown(base)}` does not exist in {repo['full_name']}; push "
                          "it, or choose another with `/mull base <branch>`, then `/mull retry`")
    earlier = await kept_run.kept(svc.redis, keep_as) if keep_as else None
    if earlier is not None and await _resume(app, gh, cache, mirror, repo, branch, remote, earlier, log):
        return kept_run.resumed(earlier)
    start = remote if remote is not None and not restart else f"refs/remotes/origin/{base}"
    start = (await start_from(mirror) if start_from is not None else None) or start
    return await _run(job, repo, branch, mirror, remote, start, prompt_for, message_for, bot, config, stage,
                      keep_as, subject or f"branch {branch}")


async def prefetch(job: JobRun, repo: dict[str, Any]) -> asyncio.Task[Path]:
    """Start the mirror's fetch in the background, for ``run_on_branch``'s ``fetched``: the job goes on with its
    GitHub calls meanwhile. Whatever happens next, ``end_prefetch`` must see the task."""
    app: GitHubApp = job.svc.github
    cache: RepoCache = job.svc.repos
    token = await app.token(job.gh)
    return asyncio.ensure_future(cache.fetch(int(repo["id"]), repo["clone_url"], token))


async def end_prefetch(fetching: asyncio.Task[Path] | None) -> None:
    """A prefetch the job did not use is stopped (its git is killed); either way it has ended on return."""
    if fetching is None:
        return
    if not fetching.done():
        fetching.cancel()
    await asyncio.gather(fetching, return_exceptions=True)


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


async def _run(job: JobRun, repo: dict[str, Any], branch: str, mirror: Path, remote: str | None, start: str,
               prompt_for: Callable[[Path], str], message_for: Callable[[AgentResult], str], bot: BotIdentity,
               config: RepoConfig, stage: str, keep_as: str | None, subject: str) -> BranchRun:
    svc, gh, log = job.svc, job.gh, job.log
    settings: MullSettings = svc.settings
    app: GitHubApp = svc.github
    cache: RepoCache = svc.repos
    repo_id = int(repo["id"])
    started = time.monotonic()
    started_at = time.time()
    command = config.agent_command or settings.agent_command
    # A CLI agent gets a disposable repository of its own in the tree (git diff, aider); Mull never reads it.
    async with cache.run_tree(repo_id, f"{repo_id}-{branch.replace('/', '-')}", start, agent_repo=bool(command),
                              spare_branch=repo["default_branch"]) as run:
        prompt = prompt_for(run.tree)  # before setup: the instructions that apply are matched to the base's files
        # Only a tree of the default branch may leave its environment for later runs: one that starts from Mull's
        # branch holds the agent's work, which could steer setup through files the key does not cover.
        setup, setup_blocked = await _setup(job, config, run, repo_id, keep=remote is None)
        await model_stack.load()  # off the event loop: a CLI agent does not need it, the critique will
        agent = make_agent(command, settings.llm_base_url or "")
        budget = agent_budget(settings, config)
        gateway: ModelGateway = svc.gateway
        run_id = new_run_id(stage, repo_id, branch)
        transcript = gateway.transcripts_dir / f"{run_id}.jsonl"
        log.info("agent starting", branch=branch, start=start, run=run_id)
        # The agent's commands reach the network only through this run's egress proxy, which lets through
        # what the repository allows (nothing unless `network.agent` is on) and counts what it refuses.
        model = config.models.implement or settings.llm_model or ""
        # A run gets no more than its installation's month has left (worker/backlog/budget.py).
        allowance = await installation_budget.state(svc.redis, settings, job.installation_id)
        month_left = None if allowance.exhausted else allowance.tokens_left(settings.prices, model)
        run_tokens = budget.tokens if month_left is None else max(min(budget.tokens, month_left), 1)
        grant: RunGrant | None = None
        async with egress_proxy(for_agent(settings.sandbox_allowed, config.network)) as egress:
            try:
                async with gateway.run(run_id, model, budget.steps, run_tokens) as grant:
                    result = await agent.run(AgentTask(prompt=prompt, worktree=run.tree,
                                                       sandbox=egress.confine(sandbox_for(settings, run)),
                                                       model=ModelAccess(gateway.socket_path, grant)), budget)
            except asyncio.CancelledError:
                # `/mull stop` aborts the job: keep what the agent did. Any other cancellation (a worker
                # shutting down) propagates, and the run is redone elsewhere.
                stopper = await reply(svc.redis.get(keys.stop_flag(repo_id, job.job_id)))
                if not stopper:
                    raise
                who = stopper.decode()
                result = AgentResult(summary=f"Stopped by @{who} with `/mull stop`; this is the work done until "
                                     "then.", not_done=(), budget_tripped=None, error=f"stopped by @{who}", steps=0,
                                     tokens=0)
            result = dataclasses.replace(result, blocked=merged(setup_blocked, egress.blocked()))
        if grant is not None:  # what the gateway counted, also of a run stopped part way
            used = grant.usage
            run_spend = await spend.record(svc.redis, settings.prices, installation_id=job.installation_id,
                                           repo_id=repo_id, issue=issue_of_branch(branch), model=model,
                                           input_tokens=used.input_tokens, output_tokens=used.output_tokens)
            result = dataclasses.replace(result, spent=run_spend.describe())
        if run_tokens < budget.tokens and result.budget_tripped == f"tokens ({run_tokens})":
            result = dataclasses.replace(result, budget_tripped=allowance.tripped())
        if result.blocked:
            log.info("network requests blocked", blocked=dict(result.blocked))
        log.info("agent finished", steps=result.steps, tokens=result.tokens,
                 budget_tripped=result.budget_tripped, error=result.error)
        sha = await commit(run, message_for(result), bot.login, bot.email, setup=setup)
        # Where every agent run on a branch ends: its session is kept before the result, which links to it.
        session = sessions.gateway_session(run_id, stage, repo_id, str(repo.get("full_name") or ""), subject,
                                           started_at, transcript, _ending(result, sha),
                                           await _changed(run, sha))
        result = dataclasses.replace(result, session=await sessions.keep(svc, session, log))
        if sha is not None and config.test:  # after the commit: what the tests write is never committed
            tests = await run_tests(config.test, run.tree, sandbox_for(settings, run), config.test_timeout)
            await test_run.keep(svc.redis, repo_id, sha, tests)
            log.info("tests run", passed=tests.ok, exit_code=tests.exit_code, seconds=round(tests.seconds, 1))
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


async def _setup(job: JobRun, config: RepoConfig, run: RunTree, repo_id: int, *, keep: bool
                 ) -> tuple[SetupMarks | None, tuple[tuple[str, int], ...]]:
    """The repository's setup in the run's tree, what it left there, and what its egress proxy refused;
    SetupFailed when it fails.

    Setup reaches the hosts the operator allows (``MULL_SANDBOX_ALLOW_HOSTS``) as narrowed by ``network.allow``,
    through this run's egress proxy, and nothing else. An environment an earlier run's setup prepared with the
    same commands and lock files is restored instead (``worker/trees/env_cache.py``). What setup prepared is kept
    for later runs only with ``keep`` (a tree of the default branch), and not when setup changed or removed
    tracked files, since what it did then depends on the commit."""
    if not config.setup:
        return None, ()
    settings = job.svc.settings
    envs = EnvCache(job.svc.repos.root / "envs", settings.env_cache_mb * 1024 * 1024)
    key = ""
    if envs.enabled:
        tracked = {path: blob.oid for path, blob in (await base_entries(run.mirror, run.base_sha)).items()}
        spec = sandbox_for(settings, run)
        key = env_key(config.setup, tracked, sandboxed=spec.enabled, ro_paths=spec.ro_paths,
                      host=await asyncio.to_thread(toolchain))
        restored = await envs.restore(repo_id, key, run.tree)
        if restored.ok:
            job.log.info("setup restored from the environment cache", files=restored.files,
                         skipped=restored.skipped, key=key[:12])
            return await mark_setup(run), ()
        job.log.info("setup not in the environment cache", why=restored.why, key=key[:12])
    outcome = await setup_through_proxy(config, run.tree, sandbox_for(settings, run), settings.sandbox_allowed)
    job.log.info("setup run", ok=outcome.ok, command=outcome.command[:200], exit_code=outcome.exit_code,
                 seconds=round(outcome.seconds, 1), blocked=dict(outcome.blocked))
    if not outcome.ok:
        raise SetupFailed(outcome, config.setup_timeout)
    marks = await mark_setup(run)
    if envs.enabled:
        stored = (Stored(0, "the run starts from Mull's branch, not the default branch") if not keep
                  else Stored(0, "setup changed tracked files") if marks.changed
                  else await envs.store(repo_id, key, run.tree, marks.roots))
        job.log.info("environment cache", stored_bytes=stored.size, why=stored.why, evicted=stored.evicted,
                     key=key[:12])
    return marks, outcome.blocked



def _ending(result: AgentResult, sha: str | None) -> str:
    """The run's outcome in one line, for its session page."""
    if result.budget_tripped:
        return f"the {result.budget_tripped} budget ran out" + (f"; pushed {sha[:12]}" if sha else "")
    if result.error:
        return f"stopped: {result.error}" + (f"; pushed {sha[:12]}" if sha else "")
    return f"pushed {sha[:12]}" if sha else "finished without changing any file"


async def _changed(run: RunTree, sha: str | None) -> tuple[str, ...]:
    """The files Mull's commit of the run changed, as git names them (status and path)."""
    if sha is None:
        return ()
    out = await git("diff", "--name-status", "--no-renames", run.base_sha, sha, git_dir=run.mirror, check=False)
    return tuple(" ".join(line.split("\t", 1)) for line in out.splitlines() if line.strip())
