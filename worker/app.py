"""The arq worker: its functions, their timeouts and tries, and the context every job receives."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from arq import Worker, cron
from arq.worker import func

from bot import logs, redis_target
from bot.job_codec import deserialize, serialize
from bot.jobs import CRITIQUE_PR, HANDLE_DELIVERY, QUEUE, REFRESH_BACKLOG, REVISE_PR, SOLVE_ISSUE, WAKE_ITEM
from bot.redaction import Redactor
from bot.settings import MullSettings
from worker import failed_work, handlers, installations, job_log, startup_check
from worker.backlog_jobs import REFRESH_DELAY_S
from worker.backlog_reconcile import reconcile_if_lost
from worker.backlog_refresh import refresh_backlog
from worker.backlog_sweep import sweep_backlogs
from worker.critique_job import critique_pr
from worker.digests import send_digests
from worker.fairness import RunSlots
from worker.gateway.local import local_gateway
from worker.github_app import GitHubApp
from worker.handlers import handle_delivery
from worker.job_queue import pool
from worker.liveness import Liveness
from worker.redeliver import redeliver_failed
from worker.repo_cache import RepoCache, reclaim_runs
from worker.revise import revise_pr
from worker.snooze import wake_item
from worker.solve import solve_issue
from worker.steady_worker import WORKER_KEEP_TRYING_S, SteadyWorker

# Time for everything around the agent (fetch, push, PR) on top of its own wall-clock budget.
SOLVE_OVERHEAD_S = 600


SINK_TIMEOUT_S = 10.0


async def _reconcile(ctx: dict[str, Any]) -> None:
    """Installations first (the backlog rebuild needs to know the repositories), then lost backlogs."""
    await installations.reconcile(ctx)
    await reconcile_if_lost(ctx)


def stale_run_age(settings: MullSettings) -> float:
    """A run directory older than the longest run plus an hour belongs to a worker that died mid-run."""
    return max(settings.agent_timeout, settings.critique_timeout) + SOLVE_OVERHEAD_S + 3600


async def reclaim_run_dirs(ctx: dict[str, Any]) -> int:
    """Cron: trees of runs whose worker was killed, on a worker that has not started a run for a while.

    Only the file system is read (the run directories' age), never Redis. Every worker enqueues one per
    period (not unique) and any worker may take it: on several machines with their own data dirs each is swept
    by its own start-up and run starts, and by these jobs as they fall.
    """
    removed = await asyncio.to_thread(ctx["repos"].reclaim_stale)
    if removed:
        ctx["log"].warning("reclaimed run directories of dead runs", removed=[p.name for p in removed])
    return len(removed)


def every(seconds: int) -> dict[str, Any]:
    """arq cron arguments for a period that divides an hour (settings check it): seconds or whole minutes."""
    if seconds < 60:
        return {"second": set(range(0, 60, seconds))}
    return {"minute": set(range(0, 60, seconds // 60)), "second": 0}


def check_ready(settings: MullSettings) -> None:
    """Fail at startup, not at the first job, when something the worker needs is missing: all of it at once."""
    startup_check.check(settings, startup_check.WORKER)


def build_worker(settings: MullSettings, redis_url: str, *, burst: bool = False, poll_delay: float = 0.5,
                 liveness_ttl: float = 20.0, handle_signals: bool = True,
                 clock: Callable[[], float] = time.time, refresh_delay: float = REFRESH_DELAY_S,
                 with_cron: bool = True, environ: Mapping[str, str] | None = None) -> Worker:
    """``clock`` is the backlog's idea of now (queue order, ages, digest windows): simulations run a week fast."""
    check_ready(settings)
    job_log.install()
    log = logs.get("mull.worker")
    # Before anything connects to Redis: a worker that cannot reach it still clears its dead runs' trees.
    reclaimed = reclaim_runs(settings.data_dir / "repos", stale_run_age(settings))
    if reclaimed:
        log.warning("reclaimed run directories of dead runs", removed=[p.name for p in reclaimed])
    solve_timeout = settings.agent_timeout + SOLVE_OVERHEAD_S

    async def startup(ctx: dict[str, Any]) -> None:
        redis = ctx["redis"]
        ctx["settings"] = settings
        ctx["log"] = log
        ctx["redactor"] = Redactor(settings.secret_values())  # what Mull posts or sends never carries them
        ctx["github"] = GitHubApp(settings.require_app(), settings.app_private_key(), settings.github_url, redis,
                                  app_slug=settings.app_slug, redactor=ctx["redactor"])
        ctx["repos"] = RepoCache(settings.data_dir / "repos", redis, stale_after=stale_run_age(settings))
        ctx["liveness"] = Liveness(redis, ttl=liveness_ttl, log=log)
        ctx["slots"] = RunSlots(redis, settings.installation_runs, hold_seconds=solve_timeout)
        ctx["clock"] = clock
        ctx["refresh_delay"] = refresh_delay
        # Sinks read their HMAC secret from the variable a repo's config names.
        ctx["environ"] = os.environ if environ is None else environ
        ctx["http"] = httpx.AsyncClient(timeout=SINK_TIMEOUT_S)
        # The agents' only way to their model: started before any job can run one.
        ctx["exits"] = contextlib.AsyncExitStack()
        ctx["gateway"] = await ctx["exits"].enter_async_context(local_gateway(settings, logs.get("mull.gateway")))
        await ctx["liveness"].start()
        ctx["reconcile"] = asyncio.create_task(_reconcile(ctx))  # off the startup path
        log.info("worker started", worker_id=ctx["liveness"].worker_id, redis=redis_target.parse(redis_url).describe())

    async def shutdown(ctx: dict[str, Any]) -> None:
        if "reconcile" in ctx:
            ctx["reconcile"].cancel()
        if "http" in ctx:
            await ctx["http"].aclose()
        if "liveness" in ctx:
            await ctx["liveness"].stop()
        if "exits" in ctx:
            await ctx["exits"].aclose()

    async def job_start(ctx: dict[str, Any]) -> None:
        await ctx["liveness"].job_started(ctx["job_id"])
        await failed_work.started(ctx["redis"], ctx["job_id"])

    async def job_end(ctx: dict[str, Any]) -> None:
        await ctx["liveness"].job_ended(ctx["job_id"])

    return SteadyWorker(
        log=log,
        functions=[
            func(failed_work.watched(handle_delivery), name=HANDLE_DELIVERY, timeout=handlers.JOB_TIMEOUT_S,
                 max_tries=handlers.MAX_TRIES),
            # keep_result=0: a finished run must not block the next label (arq refuses ids with a result).
            func(failed_work.watched(solve_issue), name=SOLVE_ISSUE, timeout=solve_timeout, keep_result=0, max_tries=5),
            func(failed_work.watched(critique_pr), name=CRITIQUE_PR,
                 timeout=settings.critique_timeout + SOLVE_OVERHEAD_S, keep_result=7 * 24 * 3600, max_tries=5),
            # Many tries: a review-driven revision re-defers itself (arq Retry) until reviewers are quiet.
            func(failed_work.watched(revise_pr), name=REVISE_PR, timeout=solve_timeout, keep_result=0, max_tries=200),
            func(failed_work.watched(wake_item), name=WAKE_ITEM, timeout=120, keep_result=0, max_tries=5),
            # keep_result=0: the next change must be able to ask for the next refresh at once.
            func(failed_work.watched(refresh_backlog), name=REFRESH_BACKLOG, timeout=600, keep_result=0, max_tries=5),
        ],
        cron_jobs=None if not with_cron else [
            # GitHub never retries a failed delivery: redeliver them (unique: one worker runs each turn).
            cron(redeliver_failed, **every(settings.redeliver_interval), run_at_startup=True, unique=True,
                 timeout=300),
            cron(sweep_backlogs, second=30, unique=True, timeout=300),
            cron(send_digests, second=0, unique=True, timeout=300),
            cron(reclaim_run_dirs, minute=set(range(7, 60, 15)), unique=False, timeout=600, keep_result=0),
        ],
        queue_name=QUEUE,
        redis_pool=pool(redis_url, keep_trying=WORKER_KEEP_TRYING_S, socket_connect_timeout=2, socket_timeout=10),
        # Jobs and results are msgpack (bot/job_codec.py): arq's default, pickle, would make a write to Redis
        # code execution in every worker.
        job_serializer=serialize,
        job_deserializer=deserialize,
        on_startup=startup,
        on_shutdown=shutdown,
        on_job_start=job_start,
        on_job_end=job_end,
        max_jobs=settings.worker_jobs,
        keep_result=3600,
        burst=burst,
        poll_delay=poll_delay,
        health_check_interval=30,
        job_completion_wait=settings.shutdown_wait,
        handle_signals=handle_signals,
        allow_abort_jobs=True,
    )
