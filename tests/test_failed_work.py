"""Failed work is visible: retry warnings name where they failed, a final failure is one log line (the traceback
only at DEBUG), and `mull status` lists what waits for another try and what failed, each with what to do."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from arq import Retry
from doubles.burst_worker import API, run_burst
from doubles.recording_log import RecordingLog
from doubles.services import job_ctx, make_services
from githubkit.exception import RequestError, RequestFailed
from githubkit.response import Response
from redis.exceptions import ConnectionError as RedisConnectionError

from bot import keys, logs
from bot.jobs import HANDLE_DELIVERY, QUEUE, Delivery, SolveRequest, delivery_job_id
from worker.github import failures
from worker.jobs import failed_work
from worker.jobs import log as job_log
from worker.jobs import queue as job_queue
from worker.jobs.services import services
from worker.ops.status_report import print_status
from worker.webhooks import installations

ISSUE_URL = "https://api.github.com/repos/acme/widgets/issues/7"
SOLVE = SolveRequest(installation_id=1, repo_id=12, repo="acme/widgets", issue=7, requested_by="maria", trigger="g")
JOB = "solve:12:7"


def _github_502(url: str = ISSUE_URL) -> RequestFailed:
    request = httpx.Request("GET", url)
    return RequestFailed(Response(httpx.Response(502, request=request), object))


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    out = io.StringIO()
    logs.configure("INFO", stream=out)
    yield out
    logs.configure("INFO")


def test_a_failure_is_described_in_one_line_with_where_it_failed() -> None:
    assert failures.describe(_github_502(ISSUE_URL + "?access_token=ghs_" + "a" * 36)) == (
        f"RequestFailed: HTTP 502 Bad Gateway from GET {ISSUE_URL}")  # no query: it may carry a token
    refused = RequestError(httpx.ConnectError("All connection attempts failed",
                                              request=httpx.Request("POST", "https://ghe.example.com/api/v3/x")))
    assert failures.describe(refused) == ("RequestError: All connection attempts failed (POST "
                                          "https://ghe.example.com/api/v3/x)")
    assert failures.target_of(RedisConnectionError("Error 111 connecting to 127.0.0.1:6379")) == "Redis"
    assert failures.describe(KeyError("head")) == "KeyError: 'head'"
    assert failures.describe(RuntimeError("line one\n  line two")) == "RuntimeError: line one line two"
    assert failures.target_of(KeyError("head")) == ""


def _ctx(redis: Any, job_id: str = JOB, job_try: int = 1) -> dict[str, Any]:
    return job_ctx(make_services(redis, log=RecordingLog()), job_id=job_id, job_try=job_try)


async def _with_redis(redis_url: str, work: Any) -> Any:
    redis = aioredis.Redis.from_url(redis_url)
    try:
        return await work(redis)
    finally:
        await redis.aclose()


def test_a_retried_failure_is_noted_with_its_url_and_forgotten_when_the_job_runs_again(redis_url: str) -> None:
    async def flaky(ctx: dict[str, Any], request: SolveRequest) -> str:
        exc = _github_502()
        raise failures.retry_later(exc, ctx["job_try"]) from exc

    async def main(redis: Any) -> tuple[dict, list, list, list]:
        ctx = _ctx(redis, job_try=2)
        with pytest.raises(Retry):
            await failed_work.watched(flaky)(ctx, SOLVE)
        noted = await failed_work.retrying(redis, {JOB})
        gone_from_queue = await failed_work.retrying(redis, set())
        await failed_work.started(redis, JOB)
        return ctx, noted, gone_from_queue, await failed_work.retrying(redis, {JOB})

    ctx, [noted], gone_from_queue, after_start = asyncio.run(_with_redis(redis_url, main))
    [(event, fields)] = services(ctx).log.warnings()
    assert event == f"implement failed, trying again in 30 s: GET {ISSUE_URL}"
    assert fields["error"] == f"RequestFailed: HTTP 502 Bad Gateway from GET {ISSUE_URL}"
    assert (fields["job_try"], fields["max_tries"], fields["repo"], fields["number"]) == (2, 5, "acme/widgets", 7)
    assert {k: noted[k] for k in ("job", "stage", "repo", "number", "try", "max_tries", "target", "fix")} == {
        "job": JOB, "stage": "implement", "repo": "acme/widgets", "number": 7, "try": 2, "max_tries": 5,
        "target": f"GET {ISSUE_URL}", "fix": "comment `/mull retry` on acme/widgets#7"}
    assert gone_from_queue == [] and after_start == []


def test_a_final_failure_is_one_error_line_and_joins_the_failed_list(redis_url: str) -> None:
    async def broken(ctx: dict[str, Any], request: SolveRequest) -> str:
        raise KeyError("head")

    async def main(redis: Any) -> tuple[dict, list, BaseException]:
        ctx = _ctx(redis)
        with pytest.raises(KeyError) as caught:
            await failed_work.watched(broken)(ctx, SOLVE)
        return ctx, [json.loads(x) for x in await redis.lrange(keys.FAILURES, 0, -1)], caught.value

    ctx, [failure], exc = asyncio.run(_with_redis(redis_url, main))
    lines = services(ctx).log.lines
    assert [(level, event) for level, event, _ in lines] == [("error", "implement failed: KeyError: 'head'")]
    assert {k: failure[k] for k in ("stage", "repo", "number", "reason", "job", "fix")} == {
        "stage": "implement", "repo": "acme/widgets", "number": 7, "reason": "KeyError: 'head'", "job": JOB,
        "fix": "comment `/mull retry` on acme/widgets#7"}
    assert failures.was_reported(exc)  # arq's own report of it is dropped (worker/jobs/log.py)


def test_waits_that_are_not_failures_and_successes_leave_no_note(redis_url: str) -> None:
    async def quiet_reviewers(ctx: dict[str, Any], request: SolveRequest) -> str:
        raise Retry(defer=5)  # a debounce, not a failure

    async def fine(ctx: dict[str, Any], request: SolveRequest) -> str:
        return "done"

    async def main(redis: Any) -> tuple[list, list, list]:
        ctx = _ctx(redis)
        with pytest.raises(Retry):
            await failed_work.watched(quiet_reviewers)(ctx, SOLVE)
        assert await failed_work.watched(fine)(ctx, SOLVE) == "done"
        lines = services(ctx).log.lines
        return lines, await failed_work.retrying(redis, {JOB}), await redis.lrange(keys.FAILURES, 0, -1)

    assert asyncio.run(_with_redis(redis_url, main)) == ([], [], [])


def test_mull_status_lists_retrying_and_failed_work_with_what_to_do(redis_url: str,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    async def nothing_yet(redis: Any) -> None:
        await print_status(redis_url)

    asyncio.run(_with_redis(redis_url, nothing_yet))
    empty = capsys.readouterr().out
    assert "retrying after a failure: 0" in empty and "failed: 0\n" in empty

    async def flaky(ctx: dict[str, Any], request: SolveRequest) -> str:
        exc = _github_502()
        raise failures.retry_later(exc, ctx["job_try"]) from exc

    async def broken(ctx: dict[str, Any], request: SolveRequest) -> str:
        raise RuntimeError("git push was refused")

    other = SolveRequest(installation_id=1, repo_id=12, repo="acme/widgets", issue=8, requested_by="m", trigger="h")

    async def fail_some(redis: Any) -> None:
        with pytest.raises(Retry):
            await failed_work.watched(flaky)(_ctx(redis), SOLVE)
        await redis.zadd(QUEUE, {JOB: time.time() * 1000 + 30_000})  # where arq keeps it until its next try
        with pytest.raises(RuntimeError):
            await failed_work.watched(broken)(_ctx(redis, "solve:12:8"), other)
        await print_status(redis_url)

    asyncio.run(_with_redis(redis_url, fail_some))
    shown = capsys.readouterr().out
    assert "retrying after a failure: 1\n" in shown
    assert (f"  {JOB} acme/widgets#7: try 1 of 5 failed (RequestFailed: HTTP 502 Bad Gateway from GET {ISSUE_URL}); "
            "next try in ") in shown
    assert "by itself; if every try fails: comment `/mull retry` on acme/widgets#7" in shown
    assert "failed: 1 (newest first)\n" in shown
    assert ("implement acme/widgets#8 (solve:12:8): RuntimeError: git push was refused; to try again: comment "
            "`/mull retry` on acme/widgets#8") in shown


def _arq_failure(exc: BaseException) -> None:
    """What arq's worker logs for a job that raised (arq/worker.py, ``logger.exception``)."""
    try:
        raise exc
    except type(exc):
        logging.getLogger("arq.worker").exception("%6.2fs ! %s failed, %s: %s", 0.12, "ab12:solve_issue",
                                                  type(exc).__name__, exc)


def test_arqs_report_of_a_failure_is_one_line_and_the_traceback_only_at_debug(captured_logs: io.StringIO) -> None:
    job_log.install()
    job_log.install()  # once, however many workers a process builds
    assert sum(isinstance(f, job_log.OneLineJobFailures) for f in logging.getLogger("arq.worker").filters) == 1
    _arq_failure(KeyError("head"))
    [line] = [json.loads(text) for text in captured_logs.getvalue().splitlines()]
    assert line["event"] == "job ab12:solve_issue failed: KeyError: 'head'" and line["level"] == "error"
    assert "exception" not in line and "Traceback" not in captured_logs.getvalue()

    reported = RuntimeError("already said")
    failures.mark_reported(reported)
    _arq_failure(reported)  # Mull's boundary logged it: arq's line would say it twice
    assert len(captured_logs.getvalue().splitlines()) == 1

    debug = io.StringIO()
    logs.configure("DEBUG", stream=debug)
    _arq_failure(KeyError("head"))
    lines = [json.loads(text) for text in debug.getvalue().splitlines()]
    assert [(line["level"], line["event"]) for line in lines] == [
        ("debug", "traceback of job ab12:solve_issue"), ("error", "job ab12:solve_issue failed: KeyError: 'head'")]
    assert "Traceback" in lines[0]["exception"]


def test_a_worker_names_the_url_on_each_retry_and_ends_with_one_line(redis_url: str, tmp_path: Path, app_keypair,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    captured_logs: io.StringIO) -> None:
    guid = "9a9a9a9a-0000-4e11-8d7b-0123456789ab"
    url = f"{API}/app/installations/7"

    async def unreachable(ctx: dict[str, Any], payload: dict[str, Any], log: Any) -> str:
        raise httpx.ConnectError("connection refused", request=httpx.Request("GET", url + "?page=2"))

    monkeypatch.setattr(installations, "on_installation", unreachable)
    monkeypatch.setattr(failures, "retry_later", lambda exc, job_try: Retry(defer=0))

    async def enqueue() -> None:
        pool = await job_queue.connect(redis_url)
        body = b'{"action": "created", "installation": {"id": 7, "account": {"login": "acme"}}}'
        await pool.enqueue_job(HANDLE_DELIVERY, Delivery(guid, "installation", body, int(time.time() * 1000)),
                               _job_id=delivery_job_id(guid))
        await pool.aclose()

    asyncio.run(enqueue())
    worker = asyncio.run(run_burst(redis_url, tmp_path / "data", app_keypair[0]))
    assert worker.jobs_failed == 1
    text = captured_logs.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    retries = [line for line in lines if line["level"] == "warning" and "trying again" in line["event"]]
    assert [line["event"] for line in retries] == [f"delivery installation.created failed, trying again in 0 s: "
                                                   f"GET {url}"] * 4
    assert [line["job_try"] for line in retries] == [1, 2, 3, 4]
    errors = [line for line in lines if line["level"] == "error"]
    assert [line["event"] for line in errors] == [
        f"delivery failed on its last try: ConnectError: connection refused ({'GET ' + url}); kept as a dead letter, "
        f"retry with `mull retry-deliveries {guid}`"]
    assert "Traceback" not in text and not any("exception" in line for line in lines)
