"""Mull on a Redis watched by Sentinel: the receiver stores and a worker handles through it, and a failover
between two redis-servers loses no acknowledged delivery, answers 503 (never 500) while it lasts, and makes
no delivery run twice. The worker outlives a Redis outage longer than its clients' patience."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from arq.worker import func
from doubles.burst_worker import run_burst
from doubles.recording_log import RecordingLog
from doubles.redis_process import RedisProcess
from doubles.sentinel import SentinelPair
from githubkit import webhooks
from redis.asyncio import Redis
from starlette.testclient import TestClient

from bot import redis_target
from bot.delivery_store import ARQ_JOB_PREFIX
from bot.job_codec import deserialize, serialize
from bot.jobs import QUEUE, delivery_job_id
from bot.receiver import create_app
from worker.jobs import queue as job_queue
from worker.ops.liveness import Liveness
from worker.ops.steady_worker import SteadyWorker
from worker.webhooks import installations

SECRET = "sentinel-test-secret"


def installation_event(guid: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"action": "created", "installation": {"id": 7, "account": {"login": guid}},
                       "sender": {"login": "octocat"}}).encode()
    return body, {"X-GitHub-Event": "installation", "X-GitHub-Delivery": guid,
                  "X-Hub-Signature-256": webhooks.sign(SECRET, body), "Content-Type": "application/json"}


def post(client: TestClient, guid: str) -> Any:
    body, headers = installation_event(guid)
    return client.post("/webhooks/github", content=body, headers=headers)


@pytest.fixture
def handled(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The deliveries a worker handled, in order (the account login carries the guid)."""
    seen: list[str] = []

    async def record(ctx: dict[str, Any], payload: dict[str, Any], log: Any) -> str:
        seen.append(payload["installation"]["account"]["login"])
        return "handled"

    monkeypatch.setattr(installations, "on_installation", record)
    return seen


def drain(url: str, tmp_path: Path, keypair: Any) -> None:
    worker = asyncio.run(run_burst(url, tmp_path / "data", keypair[0]))
    assert worker.jobs_failed == 0


def test_the_receiver_and_a_worker_work_through_sentinel(sentinel_pair: SentinelPair, handled: list[str],
                                                         tmp_path: Path, app_keypair: Any) -> None:
    guid = str(uuid.uuid4())
    with TestClient(create_app(SECRET, sentinel_pair.url, app_slug="mull")) as client:
        assert client.get("/readyz").status_code == 200
        assert post(client, guid).status_code == 202
        assert post(client, guid).status_code == 200  # a redelivery of it is recognised
    # Acknowledged means the replica has it as well as the master.
    assert sentinel_pair.replica().client().exists(ARQ_JOB_PREFIX + delivery_job_id(guid))
    drain(sentinel_pair.url, tmp_path, app_keypair)
    assert handled == [guid]


def test_a_failover_loses_no_acknowledged_delivery_and_runs_none_twice(
        sentinel_pair: SentinelPair, handled: list[str], tmp_path: Path, app_keypair: Any) -> None:
    acknowledged, refused, unconfirmed = (str(uuid.uuid4()) for _ in range(3))
    with TestClient(create_app(SECRET, sentinel_pair.url, app_slug="mull")) as client:
        assert post(client, acknowledged).status_code == 202
        old = sentinel_pair.kill_master()  # right after the 202, before anything else could replicate it

        during = post(client, refused)  # Sentinel still names the dead master
        assert during.status_code == 503 and "not stored" in during.json()["error"]
        assert client.get("/readyz").status_code == 503

        new = sentinel_pair.wait_promoted(old)
        assert new.client().exists(ARQ_JOB_PREFIX + delivery_job_id(acknowledged))  # the 202 held

        # The promoted master has no replica yet: it stores, but cannot have it confirmed.
        alone = post(client, unconfirmed)
        assert alone.status_code == 503 and "no replica confirmed" in alone.json()["error"]

        old.start()  # the dead machine comes back; Sentinel makes it a replica of the new master
        sentinel_pair.wait_replicated()
        # GitHub's redeliveries (the redelivery cron asks for them): stored now, or recognised as stored.
        assert post(client, refused).status_code == 202
        assert post(client, unconfirmed).status_code == 200
        assert post(client, acknowledged).status_code == 200
    drain(sentinel_pair.url, tmp_path, app_keypair)
    assert sorted(handled) == sorted([acknowledged, refused, unconfirmed])  # each exactly once
    assert sentinel_pair.switches() == 1


def test_a_client_waiting_out_a_failover_writes_to_the_new_master_not_the_old_one_come_back(
        sentinel_pair: SentinelPair) -> None:
    """A command sent while Sentinel still names the dead master waits; when the old master is restarted it is a
    master again for a few seconds, with its stale data, until Sentinel makes it a replica. The command must
    land on the promoted master: on the old one, the resync would throw it away (and jobs read from two
    masters run twice or read as expired)."""
    async def scenario() -> None:
        client = redis_target.parse(sentinel_pair.url).client(Redis, keep_trying=30, socket_connect_timeout=1,
                                                              socket_timeout=5)
        assert await client.set("before", "1")
        old = sentinel_pair.kill_master()
        write = asyncio.create_task(client.set("probe", "written"))
        await asyncio.sleep(0.5)
        assert not write.done()  # no master to write to yet
        new = await asyncio.to_thread(sentinel_pair.wait_promoted, old)
        await asyncio.to_thread(old.start)  # back as a master until Sentinel converts it
        assert await asyncio.wait_for(write, 30)
        assert new.client().get("probe") == b"written"
        assert old.client().get("probe") is None
        await client.aclose()

    asyncio.run(scenario())


def test_the_worker_outlives_an_outage_longer_than_its_patience(tmp_path: Path) -> None:
    """arq's own loop ends the process on a Redis error; the worker must instead poll on and resume."""
    server = RedisProcess(tmp_path / "redis").start()
    ran: list[str] = []
    log = RecordingLog()

    async def note(ctx: dict[str, Any], word: str) -> None:
        ran.append(word)

    async def until(check: Any, what: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.05)

    async def scenario() -> None:
        redis = job_queue.pool(server.url, keep_trying=0.3)
        worker = SteadyWorker([func(note, name="note")], log=log, liveness=Liveness(redis), queue_name=QUEUE,
                              poll_delay=0.05, handle_signals=False, redis_pool=redis,
                              job_serializer=serialize, job_deserializer=deserialize)
        main = asyncio.create_task(worker.main())
        queue = await job_queue.connect(server.url)
        try:
            await queue.enqueue_job("note", "before")
            await until(lambda: ran == ["before"], "the first job")
            await queue.aclose()
            server.kill()
            await until(lambda: any("cannot reach Redis" in event for event, _ in log.warnings()), "the outage")
            await asyncio.sleep(0)
            assert not main.done()
            server.start()
            queue = await job_queue.connect(server.url)
            await queue.enqueue_job("note", "after")
            await until(lambda: ran == ["before", "after"], "the job after the outage")
            # The job's function has run; arq records its end after it. A close before that would cancel it.
            await until(lambda: all(task.done() for task in worker.tasks.values()), "the job's end recorded")
            assert not main.done() and ("info", "worker reached Redis again") in [line[:2] for line in log.lines]
        finally:
            worker.stop()
            main.cancel()
            await asyncio.gather(main, *worker.tasks.values(), return_exceptions=True)
            await queue.aclose()
            await worker.close()

    try:
        asyncio.run(scenario())
    finally:
        server.kill()
