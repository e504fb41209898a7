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
from worker.backlog import budget
from worker.backlog.store import Backlog
from worker.jobs import queue as job_queue
from worker.jobs.services import Services
from worker.views.needs_you import needs_you


async def start_runs(svc: Services, backlog: Backlog, repo: RepoRef) -> list[int]:
    """Start the runs of the issues that get a slot (the backlog queues their jobs as it starts them); none while
    the installation's monthly budget is spent (``worker.backlog.budget``)."""
    allowance = await budget.state(svc.redis, svc.settings, repo.installation_id)
    if allowance.exhausted:
        await _hold(svc, backlog, repo, allowance)
        return []
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


async def _hold(svc: Services, backlog: Backlog, repo: RepoRef, allowance: budget.BudgetState) -> None:
    """The queued runs wait for the budget: one "needs you" ping per run and month; the refresh this asks for
    puts the reason on each status comment."""
    told = 0
    waiting = [item for item in [await backlog.get(issue) for issue in await backlog.waiting()] if item is not None]
    if not waiting:
        return
    gh = svc.github.installation(repo.installation_id, repo.repo_id)
    async with gh:
        for item in waiting:
            told += await needs_you(svc, gh, repo, item, "budget", allowance.ping())
    if told:
        svc.log.info("runs wait for the installation's budget", repo=repo.full_name, installation=repo.installation_id,
                     waiting=len(waiting), budget=allowance.budget.describe(), spent=allowance.spent.describe())
        await touch(svc, repo)
