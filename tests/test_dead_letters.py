"""A delivery whose handling fails on every try is kept as a dead letter, shown by ``mull status`` and retried by
``mull retry-deliveries``: GitHub got 202 for it, so nothing else would ever handle it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from arq import Retry
from doubles.burst_worker import run_burst
from doubles.recording_log import RecordingLog
from doubles.services import job_ctx, make_services

from bot import keys
from bot.jobs import HANDLE_DELIVERY, Delivery, delivery_job_id
from worker.github import failures
from worker.jobs import queue as job_queue
from worker.ops import cli
from worker.webhooks import dead_letters, handlers, installations

GUID = "5f3c0e2a-dead-4e11-8d7b-0123456789ab"
TOKEN = "ghs_" + "a" * 36
BODY = b'{"action": "created", "installation": {"id": 7, "account": {"login": "acme"}}}'


@pytest.fixture(autouse=True)
def cli_logs_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """``mull`` configures logging to the stdout of the moment, here pytest's capture: not for later tests."""
    monkeypatch.setattr(cli.logs, "configure", lambda *args, **kwargs: None)


def run_burst_worker(redis_url: str, tmp_path: Path, keypair: Any) -> tuple[int, int]:
    worker = asyncio.run(run_burst(redis_url, tmp_path / "data", keypair[0]))
    return worker.jobs_failed, worker.jobs_complete


def test_a_delivery_failing_every_try_is_a_dead_letter_shown_retried_and_gone_once_handled(
        redis_url: str, tmp_path: Path, app_keypair: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    tries: list[int] = []
    broken = True

    async def flaky(ctx: dict[str, Any], payload: dict[str, Any], log: Any) -> str:
        tries.append(ctx["job_try"])
        if broken:
            raise httpx.ConnectError(f"GitHub unreachable (token {TOKEN})")  # transient: retried to the last try
        return "handled"

    monkeypatch.setattr(installations, "on_installation", flaky)
    monkeypatch.setattr(failures, "retry_later", lambda exc, job_try: Retry(defer=0))
    monkeypatch.setenv("MULL_REDIS_URL", redis_url)
    monkeypatch.chdir(tmp_path)

    async def enqueue() -> None:
        pool = await job_queue.connect(redis_url)
        await pool.enqueue_job(HANDLE_DELIVERY, Delivery(GUID, "installation", BODY, int(time.time() * 1000)),
                               _job_id=delivery_job_id(GUID))
        await pool.aclose()

    async def letters() -> tuple[int, list[dead_letters.DeadLetter], int]:
        conn = aioredis.Redis.from_url(redis_url)
        try:
            return await dead_letters.newest(conn, 10)
        finally:
            await conn.aclose()

    asyncio.run(enqueue())
    assert run_burst_worker(redis_url, tmp_path, app_keypair) == (1, 0)
    assert tries == [1, 2, 3, 4, 5]
    count, [letter], dropped = asyncio.run(letters())
    assert (count, dropped, letter.guid, letter.event, letter.retries) == (1, 0, GUID, "installation", 0)
    assert letter.error.startswith("ConnectError: GitHub unreachable") and TOKEN not in letter.error
    assert letter.delivery() == Delivery(GUID, "installation", BODY, letter.received_at_ms)

    assert cli.main(["status"]) == 0
    shown = capsys.readouterr().out
    assert "dead letters: 1" in shown and GUID in shown and "ConnectError: GitHub unreachable" in shown

    # Retried while the cause persists: it fails every try again and stays, with its retry counted.
    assert cli.main(["retry-deliveries", GUID]) == 0
    assert f"enqueued as delivery:{GUID}:retry:1" in capsys.readouterr().out
    tries.clear()
    assert run_burst_worker(redis_url, tmp_path, app_keypair) == (1, 0)
    assert len(tries) == 5
    count, [letter], _ = asyncio.run(letters())
    assert (count, letter.retries) == (1, 1)

    # The cause fixed: the next retry (a new job id; the failed jobs' results are still kept) is handled.
    broken = False
    assert cli.main(["retry-deliveries", "--all"]) == 0
    assert f"enqueued as delivery:{GUID}:retry:2" in capsys.readouterr().out
    assert run_burst_worker(redis_url, tmp_path, app_keypair) == (0, 1)
    assert asyncio.run(letters()) == (0, [], 0)
    assert cli.main(["status"]) == 0
    assert "dead letters: 0" in capsys.readouterr().out


def test_a_bad_guid_changes_nothing_and_exits_2(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MULL_REDIS_URL", redis_url)
    monkeypatch.chdir(tmp_path)

    async def keep_one() -> None:
        conn = aioredis.Redis.from_url(redis_url)
        await dead_letters.record(conn, Delivery(GUID, "issues", b"{}", 1), RuntimeError("boom"), "delivery:x")
        await conn.aclose()

    asyncio.run(keep_one())
    assert cli.main(["retry-deliveries", GUID, "no-such-guid"]) == 2
    err = capsys.readouterr().err
    assert "no dead letter for delivery 'no-such-guid'" in err and "mull status" in err
    assert cli.main(["retry-deliveries"]) == 2
    assert "or give --all" in capsys.readouterr().err

    async def queued() -> int:
        conn = aioredis.Redis.from_url(redis_url)
        try:
            return int(await conn.zcard("arq:queue"))
        finally:
            await conn.aclose()

    assert asyncio.run(queued()) == 0  # the good guid was not enqueued either


def test_at_the_cap_the_oldest_letters_are_dropped_and_counted_and_huge_bodies_are_not_kept(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dead_letters, "KEEP", 3)
    monkeypatch.setattr(dead_letters, "MAX_BODY", 10)

    async def scenario() -> None:
        conn = aioredis.Redis.from_url(redis_url)
        dropped = []
        for n in range(5):
            dropped += await dead_letters.record(conn, Delivery(f"g{n}", "issues", b"{}", n),
                                                 RuntimeError(f"boom {n}"), f"delivery:g{n}")
            await asyncio.sleep(0.002)  # distinct failure times
        assert dropped == ["g0", "g1"]
        count, letters, lost = await dead_letters.newest(conn, 10)
        assert (count, [x.guid for x in letters], lost) == (3, ["g4", "g3", "g2"], 2)
        assert await conn.hlen(keys.DEAD_LETTERS) == 3
        await dead_letters.record(conn, Delivery("big", "push", b"x" * 11, 0), RuntimeError("boom"), "delivery:big")
        big = await dead_letters.get(conn, "big")
        assert big is not None and big.body is None and big.body_bytes == 11 and big.delivery() is None
        [(_, outcome)] = await dead_letters.retry(await job_queue.connect(redis_url), ["big"])
        assert outcome.startswith("not kept (11 bytes)")
        await conn.aclose()

    asyncio.run(scenario())


class WorkerDied(BaseException):
    """Stands for SIGKILL mid-job: nothing in the job's boundary runs after it."""


def run_handler(redis_url: str, job_try: int, handler: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(installations, "on_installation", handler)

    async def once() -> None:
        conn = aioredis.Redis.from_url(redis_url)
        ctx = job_ctx(make_services(conn, log=RecordingLog()), delivery_job_id(GUID), job_try)
        try:
            await handlers.handle_delivery(ctx, Delivery(GUID, "installation", BODY, 1))
        finally:
            await conn.aclose()

    asyncio.run(once())


def stored_letters(redis_url: str) -> list[dead_letters.DeadLetter]:
    async def read() -> list[dead_letters.DeadLetter]:
        conn = aioredis.Redis.from_url(redis_url)
        try:
            return (await dead_letters.newest(conn, 10))[1]
        finally:
            await conn.aclose()

    return asyncio.run(read())


def test_a_handler_that_hangs_ends_as_a_dead_letter_not_in_arqs_silent_cancel(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert handlers.HANDLING_BUDGET_S < handlers.JOB_TIMEOUT_S  # Mull's budget ends before arq cancels the job
    monkeypatch.setattr(handlers, "HANDLING_BUDGET_S", 0.2)

    async def hangs(ctx: dict[str, Any], payload: dict[str, Any], log: Any) -> str:
        await asyncio.sleep(3600)
        return "never"

    with pytest.raises(TimeoutError):
        run_handler(redis_url, 1, hangs, monkeypatch)
    [letter] = stored_letters(redis_url)
    assert letter.guid == GUID and letter.error == "TimeoutError: handling took longer than 0.2 s"


def test_a_worker_dying_on_the_last_try_leaves_a_dead_letter_and_success_removes_it(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async def dies(ctx: dict[str, Any], payload: dict[str, Any], log: Any) -> str:
        raise WorkerDied()

    with pytest.raises(WorkerDied):  # an earlier try killed: arq will run it again, no letter yet
        run_handler(redis_url, handlers.MAX_TRIES - 1, dies, monkeypatch)
    assert stored_letters(redis_url) == []
    with pytest.raises(WorkerDied):  # the last try killed: arq will give up without running Mull's code again
        run_handler(redis_url, handlers.MAX_TRIES, dies, monkeypatch)
    [letter] = stored_letters(redis_url)
    assert letter.error.startswith("LastTryStopped: the worker stopped during the last try")
    assert letter.delivery() == Delivery(GUID, "installation", BODY, 1)

    async def handled(ctx: dict[str, Any], payload: dict[str, Any], log: Any) -> str:
        return "handled"

    run_handler(redis_url, handlers.MAX_TRIES, handled, monkeypatch)  # a last try that succeeds keeps nothing
    assert stored_letters(redis_url) == []
