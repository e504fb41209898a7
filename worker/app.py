"""The arq worker: its functions, their timeouts and tries, and the context every job receives."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from arq import cron
from arq.worker import func

from bot import logs, redis_target
from bot.job_codec import deserialize, serialize
from bot.jobs import CRITIQUE_PR, HANDLE_DELIVERY, QUEUE, REFRESH_BACKLOG, REVISE_PR, SOLVE_ISSUE, WAKE_ITEM
from bot.redaction import Redactor
from bot.settings import MullSettings
from bot.tls_context import client_context
from worker.backlog.fairness import RunSlots
from worker.backlog.reconcile import reconcile_if_lost
from worker.backlog.refresh import refresh_backlog
from worker.backlog.snooze import wake_item
from worker.backlog.sweep import sweep_backlogs
from worker.gateway.local import local_gateway
from worker.github.app import GitHubApp
from worker.jobs import failed_work
from worker.jobs import log as job_log
from worker.jobs.critique import critique_pr
from worker.jobs.queue import pool
from worker.jobs.revise import revise_pr
from worker.jobs.services import REFRESH_DELAY_S, SERVICES, Services, services
from worker.jobs.solve import solve_issue
from worker.ops import key_layout, startup_check
from worker.ops.liveness import Liveness
from worker.ops.steady_worker import WORKER_KEEP_TRYING_S, SteadyWorker
from worker.sessions.expiry import expire_sessions
from worker.trees.repo_cache import RepoCache, reclaim_runs
from worker.views.digests import send_digests
from worker.webhooks import handlers, installations
from worker.webhooks.handlers import handle_delivery
from worker.webhooks.redeliver import redeliver_failed

# Time for everything around the agent (fetch, push, PR) on top of its own wall-clock budget.
SOLVE_OVERHEAD_S = 600


SINK_TIMEOUT_S = 10.0
CRON_RESULT_KEEP_S = 3600


async def _reconcile(svc: Services) -> None:
    """Installations first (the backlog rebuild needs to know the repositories), then lost backlogs."""
    await installations.reconcile(svc)
    await reconcile_if_lost(svc)


def stale_run_age(settings: MullSettings) -> float:
    """A run directory older than the longest run plus an hour belongs to a worker that died mid-run."""
    return max(settings.agent_timeout, settings.critique_timeout) + SOLVE_OVERHEAD_S + 3600


async def reclaim_run_dirs(ctx: dict[str, Any]) -> int:
    """Cron: trees of runs whose worker was killed, on a worker that has not started a run for a while.

    Only the file system is read (the run directories' age), never Redis. Every worker enqueues one per
    period (not unique) and any worker may take it: on several machines with their own data dirs each is swept
    by its own start-up and run starts, and by these jobs as they fall.
    """
    svc = services(ctx)
    removed = await asyncio.to_thread(svc.repos.reclaim_stale)
    if removed:
        svc.log.warning("reclaimed run directories of dead runs", removed=[p.name for p in removed])
    return len(removed)


def every(seconds: int) -> dict[str, Any]:
    """arq cron arguments for a period that divides an hour (settings check it): seconds or whole minutes."""
    if seconds < 60:
        return {"second": set(range(0, 60, seconds))}
    return {"minute": set(range(0, 60, seconds // 60)), "second": 0}


def unique_cron(coroutine: Any, **kwargs: Any) -> Any:
    """A cron job one worker runs per firing. Every worker enqueues each firing under the same id, and arq
    refuses the id only while the job is queued, running, or its result is kept: a worker that enqueues a
    firing late (its Redis was down at that moment, or it was busy) would run it again once arq's result of
    it is gone. So the result is kept for an hour, longer than any Redis outage Mull rides out."""
    return cron(coroutine, unique=True, keep_result=CRON_RESULT_KEEP_S, **kwargs)


def check_ready(settings: MullSettings) -> None:
    """Fail at startup, not at the first job, when something the worker needs is missing: all of it at once."""
    startup_check.check(settings, startup_check.WORKER)


# arq finds new jobs by polling; its default half second is paid twice between a label and its agent (the
# delivery's job, then the run's), most of a warm start. A poll is one cheap ZRANGEBYSCORE.
POLL_DELAY_S = 0.05


def build_worker(settings: MullSettings, redis_url: str, *, burst: bool = False, poll_delay: float = POLL_DELAY_S,
                 handle_signals: bool = True,
                 clock: Callable[[], float] = time.time, refresh_delay: float = REFRESH_DELAY_S,
                 with_cron: bool = True, environ: Mapping[str, str] | None = None,
                 ready_checked: bool = False) -> SteadyWorker:
    """``clock`` is the backlog's idea of now (queue order, ages, digest windows): simulations run a week fast.

    ``ready_checked``: the caller ran check_ready already, before starting anything (it starts a sandbox).
    """
    if not ready_checked:
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
        await key_layout.upgrade(redis, log)  # before any job reads a key by its current name
        redactor = Redactor(settings.secret_values())  # what Mull posts or sends never carries them
        # Closed by shutdown, in reverse: the sinks' client, then the gateway.
        ctx["exits"] = exits = contextlib.AsyncExitStack()
        http = await exits.enter_async_context(httpx.AsyncClient(timeout=SINK_TIMEOUT_S, verify=client_context()))
        # The agents' only way to their model: started before any job can run one.
        gateway = await exits.enter_async_context(local_gateway(settings, logs.get("mull.gateway")))
        svc = Services(
            redis=redis, settings=settings, log=log, redactor=redactor, http=http, gateway=gateway,
            github=GitHubApp(settings.require_app(), settings.app_private_key(), settings.github_url, redis,
                             app_slug=settings.app_slug, redactor=redactor),
            repos=RepoCache(settings.data_dir / "repos", stale_after=stale_run_age(settings)),
            liveness=liveness,
            slots=RunSlots(redis, settings.installation_runs, hold_seconds=solve_timeout),
            clock=clock, refresh_delay=refresh_delay,
            environ=os.environ if environ is None else environ)
        ctx[SERVICES] = svc
        await svc.liveness.start()
        ctx["reconcile"] = asyncio.create_task(_reconcile(svc))  # off the startup path
        log.info("worker started", worker_id=svc.liveness.worker_id, redis=redis_target.parse(redis_url).describe())

    async def shutdown(ctx: dict[str, Any]) -> None:
        if "reconcile" in ctx:
            ctx["reconcile"].cancel()
        if SERVICES in ctx:
            await services(ctx).liveness.stop()
        if "exits" in ctx:
            await ctx["exits"].aclose()

    async def job_start(ctx: dict[str, Any]) -> None:
        await failed_work.started(services(ctx).redis, ctx["job_id"])

    redis = pool(redis_url, keep_trying=WORKER_KEEP_TRYING_S, socket_connect_timeout=2, socket_timeout=10)
    # Made here, not at startup: the worker takes each job and records itself as its holder in one step.
    liveness = Liveness(redis, ttl=settings.worker_heartbeat, log=log)
    return SteadyWorker(
        log=log,
        liveness=liveness,
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
            unique_cron(redeliver_failed, **every(settings.redeliver_interval), run_at_startup=True, timeout=300),
            unique_cron(sweep_backlogs, second=30, timeout=300),
            unique_cron(send_digests, second=0, timeout=300),
            unique_cron(expire_sessions, minute=41, second=0, timeout=600),
            cron(reclaim_run_dirs, minute=set(range(7, 60, 15)), unique=False, timeout=600, keep_result=0),
        ],
        queue_name=QUEUE,
        redis_pool=redis,
        # Jobs and results are msgpack (bot/job_codec.py): arq's default, pickle, would make a write to Redis
        # code execution in every worker.
        job_serializer=serialize,
        job_deserializer=deserialize,
        on_startup=startup,
        on_shutdown=shutdown,
        on_job_start=job_start,
        max_jobs=settings.worker_jobs,
        keep_result=3600,
        burst=burst,
        poll_delay=poll_delay,
        health_check_interval=30,
        job_completion_wait=settings.shutdown_wait,
        handle_signals=handle_signals,
        allow_abort_jobs=True,
    )
