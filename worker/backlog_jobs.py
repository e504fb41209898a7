"""The jobs the backlog asks for: the agent runs that just got a slot, and a refresh of what people see.

Runs wait in the backlog, not in arq: a solve job exists only once its issue may run, so the queue arq
holds (and that autoscaling watches) is work a worker can start now.
"""

from __future__ import annotations

from typing import Any

from bot.jobs import (
    RefreshRequest,
    enqueue_refresh,
    enqueue_solve,
    solve_job_id,
)
from worker import job_queue
from worker.backlog import Backlog

REFRESH_DELAY_S = 1.0  # changes in a burst (eight labels at once) make one dashboard edit


async def start_runs(ctx: dict[str, Any], backlog: Backlog, installation_id: int, repo: str) -> list[int]:
    """Start the runs of the issues that get a slot (the backlog queues their jobs as it starts them)."""
    started = []
    for request, queued in await backlog.start_next():
        job_id = solve_job_id(request.repo_id, request.issue)
        if not queued and not await enqueue_solve(ctx["redis"], request):
            # arq still holds this id (a previous run is finishing): that run's end starts the queue again.
            ctx["log"].warning("run not started: arq holds this job id", repo=repo, issue=request.issue,
                               status=(await job_queue.job(job_id, ctx["redis"]).status()).value)
            await backlog.requeue(request.issue)
            continue
        started.append(request.issue)
    if started:
        ctx["log"].info("runs started", repo=repo, issues=started)
        await touch(ctx, installation_id, backlog.repo_id, repo)
    return started


async def touch(ctx: dict[str, Any], installation_id: int, repo_id: int, repo: str) -> None:
    """Ask for a refresh of the repo's status positions and dashboard (coalesced by the job id)."""
    await enqueue_refresh(ctx["redis"], RefreshRequest(installation_id, repo_id, repo),
                          ctx.get("refresh_delay", REFRESH_DELAY_S))
