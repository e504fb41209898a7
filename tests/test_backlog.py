"""The backlog's Redis side on a real Redis: the run line under ``max_in_flight``, snoozed issues keeping their
place, held drafts in release order, review slots per repo and per reviewer, and snooze/wake round trips."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from bot import keys
from bot.jobs import QUEUE, SOLVE_ISSUE, SolveRequest
from worker.backlog.state import Item, ItemState
from worker.backlog.store import Backlog, Limits, known_repos, reviewer_load
from worker.jobs import queue as job_queue


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def on_redis(test: Callable[[aioredis.Redis], Awaitable[None]]) -> Callable[[str], None]:
    """Run an async test body on a fresh database of the test Redis (no asyncio plugin needed)."""

    def run(redis_url: str) -> None:
        async def main() -> None:
            client = aioredis.Redis.from_url(redis_url)
            await client.flushdb()
            try:
                await test(client)
            finally:
                await client.aclose()

        asyncio.run(main())

    run.__name__ = test.__name__
    return run


def request(issue: int, by: str = "alice") -> SolveRequest:
    return SolveRequest(installation_id=7, repo_id=100, repo="acme/widgets", issue=issue, requested_by=by,
                        trigger=f"t{issue}")


async def line(redis: aioredis.Redis, clock: Clock, issues: list[int], limit: int = 2) -> Backlog:
    backlog = Backlog(redis, 100, clock)
    await backlog.remember_repo(7, "acme/widgets", Limits(max_in_flight=limit, max_awaiting_review=3))
    for issue in issues:
        clock.now += 60
        assert await backlog.enqueue(request(issue), title=f"Issue {issue}")
    return backlog


@on_redis
async def test_runs_start_oldest_first_and_never_more_than_max_in_flight(redis) -> None:
    clock = Clock()
    backlog = await line(redis, clock, [5, 3, 9, 4])
    started = await backlog.start_next()
    assert [r.issue for r, _ in started] == [5, 3]
    assert await backlog.start_next() == []  # both slots taken
    assert await backlog.ahead_of(9) == 0 and await backlog.ahead_of(4) == 1
    await backlog.run_ended(3)
    assert [r.issue for r, _ in await backlog.start_next()] == [9]
    assert await backlog.running() == [5, 9] or sorted(await backlog.running()) == [5, 9]
    assert await backlog.waiting() == [4]


@on_redis
async def test_a_run_starts_with_its_solve_job_queued_in_the_same_step(redis) -> None:
    """No worker death between taking a slot and queueing the job can leave a slot no job will ever free."""
    clock = Clock()
    backlog = await line(redis, clock, [5, 3], limit=1)
    started = await backlog.start_next()
    assert [(r.issue, queued) for r, queued in started] == [(5, True)]
    assert await redis.zrange(QUEUE, 0, -1) == [b"solve:100:5"]
    assert await redis.lrange(keys.NEW_WORK, 0, -1) == [b"1"]  # an idle worker takes it at once
    await redis.delete(keys.NEW_WORK)
    assert await backlog.start_next() == [] and not await redis.exists(keys.NEW_WORK)  # nothing started: no signal
    info = await job_queue.job("solve:100:5", redis).info()
    assert info is not None and info.function == SOLVE_ISSUE and info.args == (request(5),)
    await backlog.run_ended(5)
    assert not await redis.hexists(backlog.key("jobs"), "5")


@on_redis
async def test_an_issue_whose_previous_run_arq_still_holds_waits_in_its_place(redis) -> None:
    clock = Clock()
    backlog = await line(redis, clock, [5, 3], limit=1)
    await redis.set("arq:job:solve:100:5", b"a previous run, finishing")
    assert [r.issue for r, _ in await backlog.start_next()] == [3]
    assert await backlog.waiting() == [5]
    assert await redis.get("arq:job:solve:100:5") == b"a previous run, finishing"


@on_redis
async def test_a_delivery_queues_one_run_even_when_its_handling_is_retried_after_the_run(redis) -> None:
    """A worker died after queueing the run and the delivery was handled again once that run had ended: it
    must not queue a second run (and say a second time whatever the first one said)."""
    clock = Clock()
    backlog = await line(redis, clock, [], limit=1)
    assert await backlog.enqueue(request(5), asked_by="guid-1")
    await backlog.start_next()
    await backlog.run_ended(5)
    assert not await backlog.enqueue(request(5), asked_by="guid-1")
    assert await backlog.waiting() == [] and await backlog.running() == []
    assert await backlog.enqueue(request(5), asked_by="guid-2")  # a new label is a new run


@on_redis
async def test_a_second_enqueue_is_refused_and_keeps_the_place(redis) -> None:
    clock = Clock()
    backlog = await line(redis, clock, [1, 2, 3], limit=1)
    assert not await backlog.enqueue(request(2))
    await backlog.start_next()
    assert not await backlog.enqueue(request(1))  # running
    assert await backlog.ahead_of(3) == 1


@on_redis
async def test_several_workers_pumping_at_once_start_each_issue_once(redis) -> None:
    clock = Clock()
    await line(redis, clock, list(range(1, 21)), limit=4)
    batches = await asyncio.gather(*(Backlog(redis, 100, clock).start_next() for _ in range(8)))
    started = [r.issue for batch in batches for r, _ in batch]
    assert sorted(started) == [1, 2, 3, 4]


@on_redis
async def test_a_snoozed_issue_keeps_its_place_but_does_not_start(redis) -> None:
    clock = Clock()
    backlog = await line(redis, clock, [1, 2, 3], limit=1)
    await redis.hset(keys.snooze(100, 1), mapping={"at_ms": 1})
    await backlog.snooze(1, clock.now + 3600, None)
    assert [r.issue for r, _ in await backlog.start_next()] == [2]
    assert await backlog.ahead_of(3) == 0  # the sleeper is not ahead
    await redis.delete(keys.snooze(100, 1))
    woken = await backlog.wake(1)
    assert woken is not None and woken.state is ItemState.QUEUED and woken.snoozes == 1
    await backlog.run_ended(2)
    assert [r.issue for r, _ in await backlog.start_next()] == [1]  # back at the front: labeled first


@on_redis
async def test_unqueue_takes_an_issue_out_of_line(redis) -> None:
    backlog = await line(redis, Clock(), [1, 2], limit=0)
    assert await backlog.unqueue(1)
    assert not await backlog.unqueue(1)
    assert await backlog.waiting() == [2]


@on_redis
async def test_held_drafts_leave_oldest_labeled_first_then_smallest_effort(redis) -> None:
    clock = Clock()
    backlog = Backlog(redis, 100, clock)
    for issue, labeled, effort in ((1, 300.0, 2), (2, 100.0, 5), (3, 300.0, 1), (4, 200.0, None)):
        await backlog.hold(Item(issue=issue, pr=issue + 100, labeled_at=labeled, effort=effort))
    assert await backlog.held() == [2, 4, 3, 1]
    held = await backlog.get(3)
    assert held is not None and held.state is ItemState.HELD and held.pr == 103


@on_redis
async def test_review_slots_count_per_repo_and_per_reviewer_across_repos(redis) -> None:
    clock = Clock()
    one, two = Backlog(redis, 100, clock), Backlog(redis, 200, clock)
    await one.hold(Item(issue=1, pr=11, labeled_at=1))
    await two.hold(Item(issue=1, pr=21, labeled_at=1))
    await one.release_to(1, 7, ("Bob",))
    await two.release_to(1, 7, ("bob",))
    assert await reviewer_load(redis, 7, "bob") == 2  # logins are case-insensitive on GitHub
    assert await one.ready() == {1} and await one.held() == []
    left = await one.leave_review(1, 7)
    assert left is not None and left.state is ItemState.AWAITING
    assert await reviewer_load(redis, 7, "bob") == 1 and await one.ready() == set()


@on_redis
async def test_work_done_while_snoozed_shows_when_it_wakes(redis) -> None:
    clock = Clock()
    backlog = await line(redis, clock, [1])
    await backlog.start_next()
    await backlog.move(1, ItemState.WORKING)
    await backlog.snooze(1, clock.now + 60, None)
    await backlog.move(1, ItemState.DRAFT, pr=50)  # the run finished while it slept
    asleep = await backlog.get(1)
    assert asleep is not None and asleep.state is ItemState.SNOOZED and asleep.pr == 50
    woken = await backlog.wake(1)
    assert woken is not None and woken.state is ItemState.DRAFT and woken.wake_at is None


@on_redis
async def test_find_by_pull_request_and_forget(redis) -> None:
    clock = Clock()
    backlog = await line(redis, clock, [4])
    await backlog.move(4, ItemState.DRAFT, pr=40)
    found = await backlog.find(40)
    assert found is not None and found.issue == 4
    version = await backlog.version()
    await backlog.forget(4)
    assert await backlog.items() == [] and await backlog.waiting() == []
    assert await backlog.version() > version
    assert await known_repos(redis) == [(100, 7, "acme/widgets")]


@on_redis
async def test_limits_round_trip_with_defaults(redis) -> None:
    backlog = Backlog(redis, 300, Clock())
    assert await backlog.limits() == Limits()
    await backlog.remember_repo(9, "acme/x", Limits(1, 4, ("carol",), {"timezone": "Europe/Berlin"}))
    assert await backlog.limits() == Limits(1, 4, ("carol",), {"timezone": "Europe/Berlin"})
    assert await backlog.installation() == 9


@on_redis
async def test_a_rerun_of_a_pull_request_out_for_review_keeps_its_reviewers_and_slot(redis) -> None:
    clock = Clock()
    backlog = await line(redis, clock, [6])
    await backlog.start_next()
    await backlog.run_ended(6)
    await backlog.hold(Item(issue=6, pr=60, effort=2))
    await backlog.release_to(6, 7, ("rita",))
    assert await backlog.enqueue(request(6, by="maria"))  # `/mull retry` on it
    again = await backlog.get(6)
    assert again is not None and again.state is ItemState.QUEUED
    assert again.reviewers == ("rita",) and again.pr == 60 and await backlog.ready() == {6}
    await backlog.leave_review(6, 7)
    assert await reviewer_load(redis, 7, "rita") == 0  # the reviewer's load is given back on merge
