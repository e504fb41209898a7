"""The jobs the backlog asks for: the agent runs that just got a slot, and a refresh of what people see.

Runs wait in the backlog, not in arq: a solve job exists only once its issue may run, so the queue arq
holds (and that autoscaling watches) is work a worker can start now.
"""

from __future__ import annotations

from typing import Any

from arq.jobs import Job, JobStatus

from bot.jobs import REFRESH_BACKLOG, SOLVE_ISSUE, RefreshRequest, refresh_job_id, solve_job_id
from worker import backlog as backlogs
from worker import release
from worker.backlog import Backlog, known_repos

ACTIVE = (JobStatus.queued, JobStatus.deferred, JobStatus.in_progress)
ORPHAN_GRACE_S = 120.0  # a slot taken just now may not have its job enqueued yet
REFRESH_DELAY_S = 1.0  # changes in a burst (eight labels at once) make one dashboard edit


async def start_runs(ctx: dict[str, Any], backlog: Backlog, installation_id: int, repo: str) -> list[int]:
    """Enqueue the runs of the issues that got a slot."""
    started = []
    for request in await backlog.start_next():
        job_id = solve_job_id(request.repo_id, request.issue)
        if await ctx["redis"].enqueue_job(SOLVE_ISSUE, request, _job_id=job_id) is None:
            # arq still holds this id (a previous run is finishing): that run's end starts the queue again.
            ctx["log"].warning("run not started: arq holds this job id", repo=repo, issue=request.issue,
                               status=(await Job(job_id, ctx["redis"]).status()).value)
            await backlog.requeue(request.issue)
            continue
        started.append(request.issue)
    if started:
        ctx["log"].info("runs started", repo=repo, issues=started)
        await touch(ctx, installation_id, backlog.repo_id, repo)
    return started


async def touch(ctx: dict[str, Any], installation_id: int, repo_id: int, repo: str) -> None:
    """Ask for a refresh of the repo's status positions and dashboard (coalesced by the job id)."""
    await ctx["redis"].enqueue_job(REFRESH_BACKLOG, RefreshRequest(installation_id, repo_id, repo),
                                   _job_id=refresh_job_id(repo_id),
                                   _defer_by=ctx.get("refresh_delay", REFRESH_DELAY_S))


async def sweep_backlogs(ctx: dict[str, Any]) -> int:
    """The cron job that keeps every backlog moving when an event was missed: gives back run slots whose job
    is gone, starts what may start, releases what may go, and refreshes what changed unseen."""
    redis = ctx["redis"]
    moved = 0
    for repo_id, installation_id, repo in await known_repos(redis):
        backlog = backlogs.of(ctx, repo_id)
        for issue, started in await redis.zrange(backlog.key("running"), 0, -1, withscores=True):
            status = await Job(solve_job_id(repo_id, int(issue)), redis).status()
            if status not in ACTIVE and backlog.clock() - started > ORPHAN_GRACE_S:
                ctx["log"].warning("run slot given back: its job is gone", repo=repo, issue=int(issue))
                await backlog.run_ended(int(issue))
        moved += len(await start_runs(ctx, backlog, installation_id, repo))
        limits = await backlog.limits()
        if await backlog.held() and len(await backlog.ready()) < limits.max_awaiting_review:
            gh = ctx["github"].installation(installation_id, repo_id)
            async with gh:
                moved += len(await release.release(ctx, gh, installation_id, repo_id, repo))
        if await redis.hget(backlog.key("meta"), "refreshed") != str(await backlog.version()).encode():
            await touch(ctx, installation_id, repo_id, repo)
    return moved
