"""The worker's services and the job boundary: a missing service is a clear error, not a KeyError mid-run; the
boundary pauses a suspended installation's job, holds a run slot only while the job runs, turns trouble that
may pass into a retry with backoff while tries are left, and lets everything else through. Real Redis; the
GitHub double in process."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq import Retry
from doubles.in_process_github import InProcessGitHub, in_process_github
from doubles.services import job_ctx

from worker.jobs.boundary import job_boundary
from worker.jobs.services import SERVICES, services
from worker.lifecycle import Stage, of
from worker.webhooks import installations


def test_a_context_without_services_says_where_they_come_from() -> None:
    with pytest.raises(RuntimeError, match=r"no Services under 'services' \(it has \['job_id', 'redis'\]\).*"
                                           r"worker/app.py's startup"):
        services({"redis": object(), "job_id": "solve:1:2"})
    with pytest.raises(RuntimeError, match="no Services"):
        services({SERVICES: {"redis": object()}})  # the old flat dict is refused, not half-used


def run(tmp_path: Path, redis_url: str, app_keypair: tuple[str, str], scenario: Any) -> Any:
    async def main() -> Any:
        async with in_process_github(tmp_path, redis_url, app_keypair) as world:
            return await scenario(world)
    return asyncio.run(main())


def test_the_boundary_needs_a_repository_or_an_installation(tmp_path: Path, redis_url: str,
                                                           app_keypair: tuple[str, str]) -> None:
    async def scenario(world: InProcessGitHub) -> None:
        with pytest.raises(ValueError, match="needs a repository or an installation id"):
            async with job_boundary(job_ctx(world.svc), None):
                pass

    run(tmp_path, redis_url, app_keypair, scenario)


def test_transient_trouble_is_retried_until_the_last_try_and_the_slot_always_given_back(
        tmp_path: Path, redis_url: str, app_keypair: tuple[str, str]) -> None:
    async def scenario(world: InProcessGitHub) -> None:
        holders: list[list[str]] = []
        for job_try, raised, expected in [(1, httpx.ConnectError("GitHub unreachable"), Retry),
                                          (5, httpx.ConnectError("GitHub unreachable"), httpx.ConnectError),
                                          (1, KeyError("a bug"), KeyError)]:
            with pytest.raises(expected):
                async with job_boundary(job_ctx(world.svc, "solve:1:7", job_try), world.ref, run_slot=True) as job:
                    holders.append(await world.svc.slots.holders(world.ref.installation_id))
                    assert job.job_try == job_try and job.will_retry(raised) is (expected is Retry)
                    raise raised
            assert await world.svc.slots.holders(world.ref.installation_id) == []
        assert holders == [["solve:1:7"]] * 3
        retried = [kw for event, kw in world.log.warnings() if event == "transient failure, retrying"]
        assert len(retried) == 1 and "GitHub unreachable" in retried[0]["error"]

    run(tmp_path, redis_url, app_keypair, scenario)


def test_a_suspended_installation_pauses_jobs_but_not_deliveries(tmp_path: Path, redis_url: str,
                                                                  app_keypair: tuple[str, str]) -> None:
    async def scenario(world: InProcessGitHub) -> None:
        await installations.record(world.svc.redis, {"id": world.ref.installation_id, "suspended_at": "now",
                                                     "account": {"login": "acme"}})
        with pytest.raises(Retry):
            async with job_boundary(job_ctx(world.svc, "critique:1"), world.ref):
                pytest.fail("a suspended installation's job must not start")
        async with job_boundary(job_ctx(world.svc, "delivery:1"), world.ref, pause_when_suspended=False) as job:
            assert (await world.svc.github.identity(job.gh)).login == world.double.bot_login

    run(tmp_path, redis_url, app_keypair, scenario)


def test_queued_is_reached_only_with_a_run_to_make(tmp_path: Path, redis_url: str,
                                                   app_keypair: tuple[str, str]) -> None:
    async def scenario(world: InProcessGitHub) -> None:
        async with world.gh as gh:
            with pytest.raises(ValueError, match=r"call queue\(request\)"):
                await of(world.svc, gh, world.ref, 1, world.double.bot_login).move(Stage.QUEUED)

    run(tmp_path, redis_url, app_keypair, scenario)
