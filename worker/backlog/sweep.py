"""The cron job that keeps every backlog moving when an event was missed or a worker died mid-step."""

from __future__ import annotations

from typing import Any

from arq.jobs import JobStatus

from bot.jobs import solve_job_id
from worker.backlog import release
from worker.backlog import store as backlogs
from worker.backlog.jobs import start_runs, touch
from worker.backlog.store import known_refs
from worker.jobs import queue as job_queue
from worker.jobs.services import services
from worker.ops.redis_reply import reply

ACTIVE = (JobStatus.queued, JobStatus.deferred, JobStatus.in_progress)
ORPHAN_GRACE_S = 120.0  # a slot taken just now may not have its job enqueued yet


async def sweep_backlogs(ctx: dict[str, Any]) -> int:
    """The cron job that keeps every backlog moving when an event was missed: gives back run slots whose job
    is gone, starts what may start, releases what may go, and refreshes what changed unseen."""
    svc = services(ctx)
    redis = svc.redis
    moved = 0
    for repo in await known_refs(redis):
        backlog = backlogs.of(svc, repo.repo_id)
        for issue, started in await redis.zrange(backlog.key("running"), 0, -1, withscores=True):
            status = await job_queue.job(solve_job_id(repo.repo_id, int(issue)), redis).status()
            if status not in ACTIVE and backlog.clock() - started > ORPHAN_GRACE_S:
                svc.log.warning("run slot given back: its job is gone", repo=repo.full_name, issue=int(issue))
                await backlog.run_ended(int(issue))
        moved += len(await start_runs(svc, backlog, repo))
        limits = await backlog.limits()
        if await backlog.held() and len(await backlog.ready()) < limits.max_awaiting_review:
            gh = svc.github.installation(repo.installation_id, repo.repo_id)
            async with gh:
                moved += len(await release.release(svc, gh, repo))
        if await reply(redis.hget(backlog.key("meta"), "refreshed")) != str(await backlog.version()).encode():
            await touch(svc, repo)
    return moved
