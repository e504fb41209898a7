"""Jobs of a dead worker are released soon instead of after arq's long in-progress expiry, and a live worker's
jobs never are: its heartbeat survives Redis errors and a flushed Redis, a lapse is not a death, a worker takes a
job and records itself as its holder in one step, and a reclaim releases only what the dead worker still holds."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from bot import keys
from worker.ops.liveness import ARQ_IN_PROGRESS, Liveness

QUEUE = "mull-test:queue"
HOUR_MS = 3_600_000


async def held(liveness: Liveness, job_id: str) -> None:
    """``job_id`` queued and taken by ``liveness``'s worker, as the worker's poll takes it."""
    await liveness.redis.zadd(QUEUE, {job_id: 1})
    assert await liveness.take(job_id, QUEUE, HOUR_MS) == 1


class Outage:
    """Cut one client off Redis for real: its connections go to nowhere and every call raises ConnectionError."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self.kwargs = client.connection_pool.connection_kwargs
        self.saved = dict(self.kwargs)

    async def _drop_connections(self) -> None:
        await self.client.connection_pool.disconnect()
        self.client.connection_pool.reset()  # new connections are made from the kwargs below

    async def __aenter__(self) -> Outage:
        await self._drop_connections()
        if "path" in self.kwargs:
            self.kwargs["path"] = "/nonexistent/redis.sock"
        else:
            self.kwargs["port"] = 1  # nothing listens there: connection refused
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._drop_connections()
        self.kwargs.update(self.saved)


def test_dead_workers_jobs_are_released_after_the_grace_and_live_ones_kept(redis_url: str) -> None:
    async def scenario() -> None:
        conn = aioredis.Redis.from_url(redis_url)
        dead = Liveness(conn, ttl=0.2)
        alive = Liveness(conn, ttl=30)
        await dead.start()
        await alive.start()
        await held(dead, "solve:1:2")
        await held(alive, "solve:1:3")
        assert dead._task is not None
        dead._task.cancel()  # the process "dies": no more beats, nothing cleaned up
        await asyncio.sleep(0.4)
        observer = Liveness(conn, ttl=30, grace=0.3)
        assert await observer.reclaim() == []  # silent, so suspect: not yet released
        assert await conn.exists(ARQ_IN_PROGRESS + "solve:1:2")
        await asyncio.sleep(0.4)
        assert await observer.reclaim() == ["solve:1:2"]
        assert not await conn.exists(ARQ_IN_PROGRESS + "solve:1:2")
        assert await conn.exists(ARQ_IN_PROGRESS + "solve:1:3")
        assert dead.worker_id.encode() not in await conn.smembers(keys.WORKERS)
        await alive.stop()
        await conn.aclose()

    asyncio.run(scenario())


def test_the_heartbeat_survives_redis_errors_and_the_workers_jobs_are_not_reclaimed(redis_url: str) -> None:
    """Its heartbeat expires during the outage and an observer finds it missing; one beat after Redis is back
    clears the suspicion, so the observer never releases the job."""
    async def scenario() -> None:
        own = aioredis.Redis.from_url(redis_url)
        conn = aioredis.Redis.from_url(redis_url)
        worker = Liveness(own, ttl=0.3, interval=0.05, grace=0.5)
        observer = Liveness(conn, ttl=30)
        await worker.start()
        await held(worker, "solve:1:2")
        async with Outage(own):
            await worker.job_ended("other")  # job hooks do not raise either
            await asyncio.sleep(0.5)  # many failed beats; the heartbeat key expires
            assert not await conn.exists(keys.worker_heartbeat(worker.worker_id))
            assert await observer.reclaim() == []  # suspect now
        await asyncio.sleep(0.3)  # Redis is back for the worker: it beats again
        assert worker._task is not None and not worker._task.done()
        assert await conn.exists(keys.worker_heartbeat(worker.worker_id))
        await asyncio.sleep(0.4)  # past the grace counted from the suspicion
        assert await observer.reclaim() == []
        assert await conn.exists(ARQ_IN_PROGRESS + "solve:1:2")
        assert not await conn.exists(keys.worker_suspect(worker.worker_id))
        await worker.stop()
        await own.aclose()
        await conn.aclose()

    asyncio.run(scenario())


def test_the_outage_is_logged_once_and_the_recovery_once(redis_url: str) -> None:
    class Log:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def warning(self, event: str, **kw: object) -> None:
            self.lines.append(event)

        info = warning

    async def scenario() -> list[str]:
        own = aioredis.Redis.from_url(redis_url)
        log = Log()
        worker = Liveness(own, ttl=1, interval=0.02, log=log)
        await worker.start()
        async with Outage(own):
            await asyncio.sleep(0.3)
        await asyncio.sleep(0.2)
        await worker.stop()
        await own.aclose()
        return log.lines

    assert asyncio.run(scenario()) == ["heartbeat cannot reach Redis; beating on",
                                       "heartbeat reached Redis again; worker re-registered"]


def test_a_flushed_redis_has_the_worker_and_its_jobs_back_within_a_beat(redis_url: str) -> None:
    async def scenario() -> None:
        conn = aioredis.Redis.from_url(redis_url)
        worker = Liveness(conn, ttl=30, interval=0.1)
        await worker.start()
        await held(worker, "solve:1:2")
        await conn.flushdb()
        await asyncio.sleep(0.25)
        assert await conn.exists(keys.worker_heartbeat(worker.worker_id))
        assert worker.worker_id.encode() in await conn.smembers(keys.WORKERS)
        assert await conn.smembers(keys.worker_jobs(worker.worker_id)) == {b"solve:1:2"}
        await worker.job_ended("solve:1:2")
        await asyncio.sleep(0.15)
        assert not await conn.exists(keys.worker_jobs(worker.worker_id))
        await worker.stop()
        await conn.aclose()

    asyncio.run(scenario())


def test_taking_a_job_records_its_holder_in_the_same_step(redis_url: str) -> None:
    async def scenario() -> None:
        conn = aioredis.Redis.from_url(redis_url)
        first, second = Liveness(conn, ttl=30), Liveness(conn, ttl=30)
        await conn.zadd(QUEUE, {"solve:1:2": 1, "later": 2 ** 50})
        assert await first.take("solve:1:2", QUEUE, HOUR_MS) == 1
        assert await conn.get(ARQ_IN_PROGRESS + "solve:1:2") == first.worker_id.encode()
        assert await conn.smembers(keys.worker_jobs(first.worker_id)) == {b"solve:1:2"}
        assert 0 < await conn.pttl(ARQ_IN_PROGRESS + "solve:1:2") <= HOUR_MS
        assert first.jobs == {"solve:1:2"}
        assert await second.take("solve:1:2", QUEUE, HOUR_MS) is None  # running elsewhere
        assert await second.take("later", QUEUE, HOUR_MS) is None  # not due
        assert await second.take("gone", QUEUE, HOUR_MS) is None  # not queued (finished meanwhile)
        assert second.jobs == set() and not await conn.exists(keys.worker_jobs(second.worker_id))
        await conn.aclose()

    asyncio.run(scenario())


def test_a_queued_job_held_in_the_workers_own_name_is_taken_again_but_never_while_it_runs(redis_url: str) -> None:
    """Across a Sentinel failover a worker can find a queued job held in its own name that it does not run: a
    take replayed by the client's retry after its reply was lost, or an end recorded on the old master only.
    No reclaim frees a live worker's job, so unless the holder takes it again it waits most of an hour."""
    async def scenario() -> None:
        conn = aioredis.Redis.from_url(redis_url)
        worker, other = Liveness(conn, ttl=30), Liveness(conn, ttl=30)
        await conn.zadd(QUEUE, {"solve:1:2": 1, "solve:1:3": 1})
        # The take landed, its reply did not: the client sends it again.
        await conn.set(ARQ_IN_PROGRESS + "solve:1:2", worker.worker_id, px=HOUR_MS)
        assert await other.take("solve:1:2", QUEUE, HOUR_MS) is None  # another worker's: still not to be taken
        assert await worker.take("solve:1:2", QUEUE, HOUR_MS) == 1
        assert worker.jobs == {"solve:1:2"}
        assert await conn.smembers(keys.worker_jobs(worker.worker_id)) == {b"solve:1:2"}
        # While it runs here, the next poll lists it again (arq keeps running jobs queued): not taken twice.
        assert await worker.take("solve:1:2", QUEUE, HOUR_MS) is None
        assert worker.jobs == {"solve:1:2"}
        # Its end was recorded on a master that died before the replica had it: queued and held, run nowhere.
        await worker.job_ended("solve:1:2")
        assert await worker.take("solve:1:2", QUEUE, HOUR_MS) == 1
        await worker.job_ended("solve:1:2")
        await conn.zrem(QUEUE, "solve:1:2")  # this time the end was recorded for good
        assert await worker.take("solve:1:2", QUEUE, HOUR_MS) is None
        assert worker.jobs == set()
        await conn.aclose()

    asyncio.run(scenario())


def test_a_reclaim_releases_only_the_jobs_the_dead_worker_still_holds(redis_url: str) -> None:
    """A job id left in a dead worker's set (its removal failed in an outage) that a live worker has taken
    since is the live worker's: releasing it would run it twice."""
    async def scenario() -> None:
        conn = aioredis.Redis.from_url(redis_url)
        dead, alive = Liveness(conn, ttl=0.2), Liveness(conn, ttl=30)
        await dead.start()
        await alive.start()
        await held(dead, "solve:1:2")
        await held(dead, "delivery:abc")
        await conn.delete(ARQ_IN_PROGRESS + "delivery:abc")  # arq recorded its end (a Retry)…
        await dead.job_ended("delivery:abc")
        await conn.sadd(keys.worker_jobs(dead.worker_id), "delivery:abc")  # as if its removal had failed
        await held(alive, "delivery:abc")  # retried, and taken by the live worker
        assert dead._task is not None
        dead._task.cancel()  # SIGKILL: no more beats, nothing cleaned up
        observer = Liveness(conn, ttl=30, grace=0.2)
        await asyncio.sleep(0.3)
        assert await observer.reclaim() == []  # suspect first
        await asyncio.sleep(0.3)
        assert await observer.reclaim() == ["solve:1:2"]
        assert not await conn.exists(ARQ_IN_PROGRESS + "solve:1:2")
        assert await conn.get(ARQ_IN_PROGRESS + "delivery:abc") == alive.worker_id.encode()
        await alive.stop()
        await conn.aclose()

    asyncio.run(scenario())


def test_a_job_whose_end_was_not_recorded_is_let_go_at_the_next_beat(redis_url: str) -> None:
    """arq could not record the end (Redis gone for longer than the worker's patience): the job is still held
    in Redis by a worker that no longer runs it, so nothing would ever reclaim it. The next beat lets it go;
    an end that was recorded keeps arq's in-progress key (a cron keeps it a while on purpose)."""
    async def scenario() -> None:
        conn = aioredis.Redis.from_url(redis_url)
        worker = Liveness(conn, ttl=30, interval=0.05)
        await worker.start()
        await held(worker, "solve:1:2")
        await held(worker, "cron:sweep:1")
        await worker.job_ended("solve:1:2", recorded=False)
        await worker.job_ended("cron:sweep:1")
        await asyncio.sleep(0.2)
        assert not await conn.exists(ARQ_IN_PROGRESS + "solve:1:2")
        assert await conn.get(ARQ_IN_PROGRESS + "cron:sweep:1") == worker.worker_id.encode()
        assert not await conn.exists(keys.worker_jobs(worker.worker_id))
        await worker.stop()
        await conn.aclose()

    asyncio.run(scenario())


def test_an_end_that_could_not_be_removed_from_the_set_is_removed_by_the_next_beat(redis_url: str) -> None:
    async def scenario() -> None:
        own = aioredis.Redis.from_url(redis_url)
        conn = aioredis.Redis.from_url(redis_url)
        worker = Liveness(own, ttl=30, interval=0.05)
        await worker.start()
        await held(worker, "solve:1:2")
        async with Outage(own):
            await worker.job_ended("solve:1:2")
        assert await conn.smembers(keys.worker_jobs(worker.worker_id)) == {b"solve:1:2"}
        await asyncio.sleep(0.3)
        assert not await conn.exists(keys.worker_jobs(worker.worker_id))
        await worker.stop()
        await own.aclose()
        await conn.aclose()

    asyncio.run(scenario())


def test_a_bug_in_the_heartbeat_is_one_error_line_and_the_traceback_only_at_debug(redis_url: str) -> None:
    from doubles.recording_log import RecordingLog

    async def scenario() -> list[tuple[str, str, dict]]:
        conn = aioredis.Redis.from_url(redis_url)
        log = RecordingLog()
        worker = Liveness(conn, ttl=1, interval=0.02, log=log)
        beats = 0

        async def broken_beat() -> None:
            nonlocal beats
            beats += 1
            raise KeyError("worker_id")

        await worker.start()
        worker.beat = broken_beat  # type: ignore[method-assign]  # from the loop's next beat on
        while beats < 2:  # the loop goes on after a bug: it beats again
            await asyncio.sleep(0.01)
        await worker.stop()
        await conn.aclose()
        return log.lines

    lines = asyncio.run(scenario())
    assert ("error", "heartbeat failed: KeyError: 'worker_id'", {}) in lines
    assert ("debug", "traceback of the heartbeat failure", {"exc_info": True}) in lines
    assert all(level in ("error", "debug") for level, _, _ in lines)
