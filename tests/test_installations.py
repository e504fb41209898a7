"""Installation tracking on a real Redis: created, suspended, repositories removed, installation deleted."""

from __future__ import annotations

import asyncio
import json

import pytest
from arq import Retry
from doubles.services import job_ctx, make_services

from bot import keys
from bot.jobs import SOLVE_ISSUE, SolveRequest, solve_job_id
from worker.jobs.queue import connect
from worker.webhooks import installations


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict]] = []

    def info(self, event: str, **kw: object) -> None:
        self.lines.append((event, kw))

    warning = info


def repo(repo_id: int, name: str) -> dict:
    return {"id": repo_id, "full_name": name}


def installation(action: str, suspended: bool = False, repos: list[dict] | None = None) -> dict:
    payload = {"action": action, "installation": {"id": 9, "account": {"login": "acme"},
                                                  "suspended_at": "2026-11-28T00:00:00Z" if suspended else None}}
    if repos is not None:
        payload["repositories"] = repos
    return payload


def test_lifecycle_cancels_jobs_and_forgets_state(redis_url: str) -> None:
    async def scenario() -> None:
        pool = await connect(redis_url)
        svc = make_services(pool, log=Log())
        ctx = job_ctx(svc, "solve:11:1")
        await installations.on_installation(ctx, installation("created", repos=[repo(11, "acme/a"),
                                                                                  repo(12, "acme/b")]), svc.log)
        assert json.loads(await pool.hget(keys.INSTALLATIONS, "9")) == {"account": "acme", "suspended": False}
        assert len(await pool.smembers(keys.installation_repos(9))) == 2
        for repo_id in (11, 12):
            await pool.enqueue_job(SOLVE_ISSUE, SolveRequest(9, repo_id, "acme/x", 1, "m", "t"),
                                   _job_id=solve_job_id(repo_id, 1))
            await pool.hset(keys.issue_state(repo_id, 1), "status_comment", "5")

        await installations.on_installation(ctx, installation("suspend", suspended=True), svc.log)
        with pytest.raises(Retry):
            await installations.pause_if_suspended(svc, "solve:11:1", 9)
        await installations.on_installation(ctx, installation("unsuspend"), svc.log)
        await installations.pause_if_suspended(svc, "solve:11:1", 9)  # no longer paused

        removed = {"action": "removed", "installation": {"id": 9}, "repositories_removed": [repo(11, "acme/a")],
                   "repositories_added": []}
        await installations.on_installation_repositories(ctx, removed, svc.log)
        assert {j.decode() for j in await pool.zrange("arq:abort", 0, -1)} == {solve_job_id(11, 1)}
        assert not await pool.exists(keys.issue_state(11, 1)) and await pool.exists(keys.issue_state(12, 1))

        await installations.on_installation(ctx, installation("deleted"), svc.log)
        assert await pool.hget(keys.INSTALLATIONS, "9") is None
        assert not await pool.exists(keys.issue_state(12, 1), keys.installation_repos(9))
        aborted = {j.decode() for j in await pool.zrange("arq:abort", 0, -1)}
        assert aborted == {solve_job_id(11, 1), solve_job_id(12, 1)}
        await pool.aclose()

    asyncio.run(scenario())
