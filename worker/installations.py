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

from arq import Retry
from arq.jobs import Job

from bot import keys
from bot.jobs import QUEUE, repo_of_job
from worker import job_queue
from worker.fairness import ARQ_RETRY
from worker.github_pages import every
from worker.redis_reply import reply
from worker.services import Services, services

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
        cancelled += await _cancel_jobs(redis, int(repo["id"]))
        stale = [k async for k in redis.scan_iter(match=f"{keys.PREFIX}*:{int(repo['id'])}:*", count=500)]
        stale += [k async for k in redis.scan_iter(match=f"{keys.PREFIX}config:repo:{int(repo['id'])}*", count=500)]
        if stale:
            await redis.delete(*stale)
        await redis.srem(keys.installation_repos(installation_id), f"{repo['id']}:{repo['full_name']}")
        await redis.hdel(keys.BACKLOG_REPOS, str(repo["id"]))
    if cancelled:
        log.info("cancelled queued jobs of removed repositories", jobs=cancelled)
    return cancelled


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
        await svc.redis.decr(ARQ_RETRY + job_id)
        raise Retry(defer=SUSPENDED_WAIT)


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
