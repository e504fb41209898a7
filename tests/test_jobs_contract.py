"""The enqueue helpers of bot/jobs.py pair each job's name, argument type and id, on a real arq queue."""

from __future__ import annotations

import asyncio
import time

import pytest
from arq.jobs import JobStatus

from bot import jobs
from bot.jobs import (
    CritiqueRequest,
    Delivery,
    RefreshRequest,
    RepoRef,
    ReviseRequest,
    SolveRequest,
    WakeRequest,
)
from worker.jobs import queue as job_queue


def test_each_helper_enqueues_once_under_its_deterministic_id(redis_url: str) -> None:
    async def scenario() -> None:
        pool = await job_queue.connect(redis_url)
        try:
            solve = SolveRequest(1, 55, "o/r", 7, "maria", "guid-1")
            assert await jobs.enqueue_solve(pool, solve) is True
            assert await jobs.enqueue_solve(pool, solve) is False  # arq holds the id: one run per issue
            critique = CritiqueRequest(1, 55, "o/r", 9, "a" * 40)
            assert await jobs.enqueue_critique(pool, critique) is True
            assert await jobs.enqueue_critique(pool, critique) is False
            assert await jobs.enqueue_critique(pool, critique, again="guid-2") is True  # a forced critique
            revise = ReviseRequest(1, 55, "o/r", 9, "ci", "fix", "")
            assert await jobs.enqueue_revise(pool, revise, "ci-abc", defer_by=30) is True
            assert await jobs.enqueue_revise(pool, revise, "ci-abc") is False
            at_ms = int((time.time() + 3600) * 1000)
            assert await jobs.enqueue_wake(pool, WakeRequest(1, 55, "o/r", 7, at_ms)) is True
            assert await jobs.enqueue_refresh(pool, RefreshRequest(1, 55, "o/r"), defer_by=1.0) is True
            assert await jobs.enqueue_refresh(pool, RefreshRequest(1, 55, "o/r"), defer_by=1.0) is False
            assert await jobs.enqueue_delivery_retry(pool, Delivery("g", "issues", b"{}", 1), 3) is True

            queued = {raw.decode(): score for raw, score in await pool.zrange(jobs.QUEUE, 0, -1, withscores=True)}
            assert set(queued) == {"solve:55:7", f"critique:55:9:{'a' * 40}", f"critique:55:9:{'a' * 40}:again:guid-2",
                                   "revise:55:9:ci-abc", f"wake:55:7:{at_ms}", "refresh:55", "delivery:g:retry:3"}
            assert queued[f"wake:55:7:{at_ms}"] == at_ms  # it runs when the snooze ends
            assert queued["revise:55:9:ci-abc"] > time.time() * 1000 + 25_000
            info = await job_queue.job("solve:55:7", pool).info()
            assert info is not None and info.function == jobs.SOLVE_ISSUE and info.args == (solve,)
            assert await job_queue.job("revise:55:9:ci-abc", pool).status() == JobStatus.deferred
        finally:
            await pool.aclose()

    asyncio.run(scenario())


def test_the_repository_of_a_job_is_read_only_from_repository_jobs() -> None:
    assert jobs.repo_of_job("solve:55:7") == 55
    assert jobs.repo_of_job("critique:55:9:abc:again:g") == 55
    assert jobs.repo_of_job("wake:56:7:123") == 56
    assert jobs.repo_of_job("refresh:57") == 57
    assert jobs.repo_of_job("delivery:55:retry:1") is None  # a delivery's guid is no repository
    assert jobs.repo_of_job("solve:abc:7") is None
    assert jobs.repo_of_job("cron:sweep_backlogs:123") is None


def test_a_request_names_its_repository_by_ref() -> None:
    ref = SolveRequest(1, 2, "acme/widgets", 3, "rick", "6f1e").ref
    assert ref == RepoRef(1, 2, "acme", "widgets") and ref.full_name == "acme/widgets"
    assert WakeRequest(1, 2, "acme/widgets", 5, 0).ref == ref


@pytest.mark.parametrize("name", ["widgets", "/widgets", "acme/", "acme/widgets/extra", ""])
def test_a_repository_name_that_is_not_owner_slash_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="is not owner/name"):
        RepoRef.of(1, 2, name)
