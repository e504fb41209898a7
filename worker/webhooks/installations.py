"""Which installations and repositories Mull serves, from ``installation*`` webhooks and the App API.

Deleting an installation or removing a repository cancels its queued jobs and forgets its state;
suspending an installation pauses its jobs until it is unsuspended. A startup reconcile lists the
installations through the App API, so a missed webhook does not leave Mull blind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from typing import Any

from arq.jobs import Job

from bot import keys
from bot.jobs import QUEUE, repo_of_job
from worker.backlog import store as backlogs
from worker.github.pages import every
from worker.jobs import queue as job_queue
from worker.jobs.services import Services, services
from worker.ops.redis_reply import reply

SUSPENDED_WAIT = 300.0


async def record(redis: Any, installation: dict[str, Any]) -> None:
    account = (installation.get("account") or {}).get("login", "")
    await redis.hset(keys.INSTALLATIONS, str(installation["id"]), json.dumps(
        {"account": account, "suspended": bool(installation.get("suspended_at"))}))


async def add_repos(redis: Any, installation_id: int, repos: list[dict[str, Any]]) -> None:
    if repos:
        await redis.sadd(keys.installation_repos(installation_id), *[f"{r['id']}:{r['full_name']}" for r in repos])


async def forget_repos(redis: Any, installation_id: int, repos: list[dict[str, Any]], log: Any) -> int:
    """Cancel the repositories' queued jobs and drop what Mull keeps about them; return jobs cancelled."""
    cancelled = 0
    for repo in repos:
        repo_id = int(repo["id"])
        cancelled += await _cancel_jobs(redis, repo_id)
        await _leave_review_queues(redis, installation_id, repo_id, str(repo["full_name"]))
        await forget_repo_keys(redis, repo_id)
        await redis.srem(keys.installation_repos(installation_id), f"{repo_id}:{repo['full_name']}")
        await redis.hdel(keys.BACKLOG_REPOS, str(repo_id))
    if cancelled:
        log.info("cancelled queued jobs of removed repositories", jobs=cancelled)
    return cancelled


async def forget_repo_keys(redis: Any, repo_id: int) -> int:
    """Delete every key of one repository: one SCAN of its prefix, so no other repository's key is looked at."""
    deleted = 0
    batch: list[bytes] = []
    async for key in redis.scan_iter(match=keys.repo_keys(repo_id), count=500):
        batch.append(key)
        if len(batch) >= 500:
            deleted += await redis.delete(*batch)
            batch = []
    if batch:
        deleted += await redis.delete(*batch)
    return deleted


async def _leave_review_queues(redis: Any, installation_id: int, repo_id: int, full_name: str) -> None:
    """The repository's pull requests stop counting against their reviewers' load (shared with the
    installation's other repositories) and against the awaiting-review gauge."""
    for item in await backlogs.Backlog(redis, repo_id).items():
        for login in item.reviewers:
            await redis.srem(keys.reviewer_load(installation_id, login), f"{repo_id}:{item.issue}")
        if item.pr is not None:
            await redis.srem(keys.AWAITING_REVIEW, f"{full_name}#{item.pr}")


async def _cancel_jobs(redis: Any, repo_id: int) -> int:
    count = 0
    for raw in await redis.zrange(QUEUE, 0, -1):
        job_id = raw.decode()
        if repo_of_job(job_id) == repo_id:
            await request_abort(job_queue.job(job_id, redis))
            count += 1
    return count


async def request_abort(job: Job) -> None:
    """Ask arq to abort a job (dropped if queued, cancelled if running) without waiting for it to end."""
    with contextlib.suppress(asyncio.TimeoutError):
        await job.abort(timeout=0)


async def suspended(redis: Any, installation_id: int) -> bool:
    raw = await redis.hget(keys.INSTALLATIONS, str(installation_id))
    return bool(raw and json.loads(raw).get("suspended"))


async def pause_if_suspended(svc: Services, job_id: str, installation_id: int) -> None:
    """A suspended installation's jobs wait (without using up their tries) until it is unsuspended."""
    if await suspended(svc.redis, installation_id):
        await job_queue.wait_untried(svc.redis, job_id, SUSPENDED_WAIT)


async def on_installation(ctx: Mapping[str, Any], payload: dict[str, Any], log: Any) -> str:
    """Handled with no GitHub client (a deleted installation has no token to make one), on the job's ``ctx``."""
    redis = services(ctx).redis
    action, installation = payload.get("action"), payload["installation"]
    installation_id = int(installation["id"])
    if action == "deleted":
        repos = payload.get("repositories") or await _known_repos(redis, installation_id)
        await forget_repos(redis, installation_id, repos, log)
        await reply(redis.hdel(keys.INSTALLATIONS, str(installation_id)))
        await redis.delete(keys.installation_repos(installation_id), keys.run_slots(installation_id))
        return "forgotten"
    await record(redis, installation)  # created, suspend, unsuspend, new_permissions_accepted
    if action == "created":
        await add_repos(redis, installation_id, payload.get("repositories") or [])
    return action or "recorded"


async def on_installation_repositories(ctx: Mapping[str, Any], payload: dict[str, Any], log: Any) -> str:
    svc = services(ctx)
    installation_id = int(payload["installation"]["id"])
    await add_repos(svc.redis, installation_id, payload.get("repositories_added") or [])
    removed = payload.get("repositories_removed") or []
    await forget_repos(svc.redis, installation_id, removed, log)
    return f"+{len(payload.get('repositories_added') or [])} -{len(removed)}"


async def _known_repos(redis: Any, installation_id: int) -> list[dict[str, Any]]:
    repos = []
    for raw in await redis.smembers(keys.installation_repos(installation_id)):
        repo_id, _, name = raw.decode().partition(":")
        repos.append({"id": int(repo_id), "full_name": name})
    return repos


async def reconcile(svc: Services) -> int:
    """List the App's installations (JWT) and record them; a failure is logged, not fatal."""
    app = svc.github.app
    seen = 0
    try:
        async for installation in every(app.rest.apps.async_list_installations):
            await record(svc.redis, installation)
            seen += 1
    except Exception as exc:  # noqa: BLE001 - startup must not die on GitHub trouble; the webhooks still come
        svc.log.warning("could not list installations", error=str(exc)[:200])
    return seen
