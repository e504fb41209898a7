"""The jobs the backlog asks for: the agent runs that just got a slot, and a refresh of what people see.

Runs wait in the backlog, not in arq: a solve job exists only once its issue may run, so the queue arq
holds (and that autoscaling watches) is work a worker can start now.
"""

from __future__ import annotations

from bot.jobs import (
    RefreshRequest,
    RepoRef,
    enqueue_refresh,
    enqueue_solve,
    solve_job_id,
)
from worker import job_queue
from worker.backlog import Backlog
from worker.services import Services


async def start_runs(svc: Services, backlog: Backlog, repo: RepoRef) -> list[int]:
    """Start the runs of the issues that get a slot (the backlog queues their jobs as it starts them)."""
    started = []
    for request, queued in await backlog.start_next():
        job_id = solve_job_id(request.repo_id, request.issue)
        if not queued and not await enqueue_solve(svc.redis, request):
            # arq still holds this id (a previous run is finishing): that run's end starts the queue again.
            svc.log.warning("run not started: arq holds this job id", repo=repo.full_name, issue=request.issue,
                            status=(await job_queue.job(job_id, svc.redis).status()).value)
            await backlog.requeue(request.issue)
            continue
        started.append(request.issue)
    if started:
        svc.log.info("runs started", repo=repo.full_name, issues=started)
        await touch(svc, repo)
    return started


async def touch(svc: Services, repo: RepoRef) -> None:
    """Ask for a refresh of the repo's status positions and dashboard (coalesced by the job id)."""
    await enqueue_refresh(svc.redis, RefreshRequest(repo.installation_id, repo.repo_id, repo.full_name),
                          svc.refresh_delay)
