"""Jobs in Redis are data: the codec round-trips Mull's jobs and results and refuses everything else, and a
pickle planted in Redis never runs in a worker or in anything that reads a job back."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import inspect
import logging
import pickle
import time
from datetime import datetime
from pathlib import Path

import msgpack
import pytest
import redis.asyncio as aioredis
from arq.jobs import DeserializationError, deserialize_job_raw, deserialize_result, serialize_job, serialize_result
from doubles.burst_worker import run_burst

import bot.jobs
from bot.job_codec import CodecError, JobFailed, deserialize, serialize
from bot.jobs import (
    HANDLE_DELIVERY,
    JOB_TYPES,
    QUEUE,
    CritiqueRequest,
    Delivery,
    RefreshRequest,
    RepoRef,
    ReviseRequest,
    SolveRequest,
    WakeRequest,
)
from worker.jobs import queue as job_queue

EVERY_JOB = [
    Delivery("6f1e", "issues", b'{"action": "labeled"}', 1_764_000_000_000),
    SolveRequest(1, 2, "acme/widgets", 3, "rick", "6f1e"),
    CritiqueRequest(1, 2, "acme/widgets", 4, "a" * 40),
    CritiqueRequest(1, 2, "acme/widgets", 4, "b" * 40, force=True),
    ReviseRequest(1, 2, "acme/widgets", 4, "review", "rename the helper", "morty"),
    WakeRequest(1, 2, "acme/widgets", 5, 1_764_000_000_000),
    RefreshRequest(1, 2, "acme/widgets"),
    RepoRef(1, 2, "acme", "widgets"),
]


class Canary:
    """Unpickling this creates ``path``: what a planted pickle would do (with ``os.system`` instead of ``open``)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return open, (str(self.path), "w")


def planted_job(path: Path) -> bytes:
    """A job in arq's pickle format whose loading creates ``path``."""
    return pickle.dumps({"t": None, "f": HANDLE_DELIVERY, "a": (Canary(path),), "k": {}, "et": 0})


def test_the_planted_pickle_is_live(tmp_path: Path) -> None:
    """The hostile tests below mean something: loading this payload the way arq does by default runs it."""
    pickle.loads(planted_job(tmp_path / "control"))
    assert (tmp_path / "control").exists()


def test_every_job_type_round_trips_in_arqs_job_format() -> None:
    for request in EVERY_JOB:
        raw = serialize_job(type(request).__name__, (request,), {"k": request}, 2, 123, serializer=serialize)
        assert deserialize_job_raw(raw, deserializer=deserialize) == (type(request).__name__, (request,),
                                                                      {"k": request}, 2, 123)
    assert {type(request) for request in EVERY_JOB} == set(JOB_TYPES)


def test_every_dataclass_of_the_job_contract_is_registered() -> None:
    """A job type added to bot/jobs.py without JOB_TYPES would fail at its first enqueue: caught here first."""
    declared = {obj for _, obj in inspect.getmembers(bot.jobs, inspect.isclass)
                if dataclasses.is_dataclass(obj) and obj.__module__ == "bot.jobs"}
    assert declared == set(JOB_TYPES)


def test_plain_data_round_trips_exactly() -> None:
    value = {"none": None, "flag": True, "n": -(2**63), "x": 1.5, "s": "ü", "b": b"\x00\xff", "l": [1, (2, [3])],
             b"raw": ((),)}
    back = deserialize(serialize(value))
    assert back == value and type(back["l"][1]) is tuple and type(back["b"]) is bytes and back["flag"] is True


def test_a_failed_jobs_exception_comes_back_as_its_name_and_message_only() -> None:
    try:
        try:
            raise OSError("git push https://x-access-token:ghs_abcdefghijklmnopqrstuvwxyz0123@github.com/o/r failed")
        except OSError as cause:
            raise RuntimeError("push failed") from cause
    except RuntimeError as exc:
        raw = serialize_result("solve_issue", (EVERY_JOB[1],), {}, 1, 1, False, exc, 2, 3, "ref", QUEUE, "solve:2:3",
                               serializer=serialize)
    assert raw is not None and b"ghs_" not in raw  # no credential reaches Redis, whatever the error said
    result = deserialize_result(raw, deserializer=deserialize)
    assert not result.success and result.args == (EVERY_JOB[1],)
    failed = result.result
    assert type(failed) is JobFailed and failed.type_name == "RuntimeError"
    assert failed.message.startswith("push failed; because OSError: git push https://[redacted]@github.com")
    assert deserialize(serialize(failed)).type_name == "RuntimeError"  # re-encoding keeps the original name


def test_an_aborted_job_reads_back_as_cancelled_so_arq_abort_sees_it() -> None:
    back = deserialize(serialize({"r": asyncio.CancelledError()}))["r"]
    assert type(back) is asyncio.CancelledError


class Colour(enum.IntEnum):
    RED = 1


@dataclasses.dataclass(frozen=True)
class NotAJob:
    x: int


@pytest.mark.parametrize("value", [object(), datetime(2026, 1, 1), Colour.RED, NotAJob(1), {1: "int key"}, {1, 2},
                                   [Path("/etc/passwd")], Canary(Path("/tmp/never"))])
def test_anything_else_is_refused_when_written(value: object) -> None:
    with pytest.raises(TypeError) as err:
        serialize(value)
    assert "cannot go into a job" in str(err.value)


def tagged(code: int, payload: object) -> bytes:
    return msgpack.packb(msgpack.ExtType(code, msgpack.packb(payload, use_bin_type=True)), use_bin_type=True)


@pytest.mark.parametrize(("data", "says"), [
    (tagged(9, []), "unknown tag 9"),
    (tagged(2, ["os.system", {"command": "touch /tmp/x"}]), "not a job type"),
    (tagged(2, ["Popen", {}]), "not a job type"),
    (tagged(2, ["SolveRequest", {"installation_id": "1", "repo_id": 2, "repo": "a/b", "issue": 3,
                                 "requested_by": "x", "trigger": "t"}]), "SolveRequest.installation_id holds a str"),
    (tagged(2, ["SolveRequest", {"installation_id": True, "repo_id": 2, "repo": "a/b", "issue": 3,
                                 "requested_by": "x", "trigger": "t"}]), "holds a bool"),
    (tagged(2, ["ReviseRequest", {"installation_id": 1, "repo_id": 2, "repo": "a/b", "pr": 3, "reason": "rm -rf",
                                  "notes": "", "requested_by": "x"}]), "ReviseRequest.reason"),
    (tagged(2, ["RefreshRequest", {"installation_id": 1, "repo_id": 2, "repo": "a/b", "__class__": 1}]), "no field"),
    (tagged(2, ["RefreshRequest", {"installation_id": 1}]), "lacks repo_id, repo"),
    (tagged(3, ["SystemExit", 0]), "not a string"),
    (b"\x80\x05\x95", "not Mull's msgpack"),
    (b"", "not Mull's msgpack"),
])
def test_anything_else_is_refused_when_read(data: bytes, says: str) -> None:
    with pytest.raises(CodecError) as err:
        deserialize(data)
    assert says in str(err.value)


def test_a_planted_pickle_is_refused_without_running(tmp_path: Path) -> None:
    with pytest.raises(CodecError, match="not Mull's msgpack"):
        deserialize(planted_job(tmp_path / "canary"))
    assert not (tmp_path / "canary").exists()


def test_tags_nested_deep_are_refused_not_a_crash() -> None:
    data = msgpack.packb([])
    for _ in range(5000):  # without a bound, decoding recurses through C and overflows the stack
        data = msgpack.packb(msgpack.ExtType(1, data))
    with pytest.raises(CodecError, match="nest deeper"):
        deserialize(data)


def test_job_handles_read_jobs_with_the_codec_never_pickle(redis_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        pool = await job_queue.connect(redis_url)
        try:
            await pool.enqueue_job("solve_issue", EVERY_JOB[1], _job_id="solve:2:3")
            assert (await job_queue.job("solve:2:3", pool).info()).args == (EVERY_JOB[1],)  # type: ignore[union-attr]
            await pool.set("arq:job:planted", planted_job(tmp_path / "canary"))
            await pool.zadd(QUEUE, {"planted": 1})
            with pytest.raises(DeserializationError):
                await job_queue.job("planted", pool).info()
            with pytest.raises(DeserializationError):
                await job_queue.job("planted", pool).abort(timeout=0)  # arq reads the job before aborting it
        finally:
            await pool.aclose()

    asyncio.run(scenario())
    assert not (tmp_path / "canary").exists()


def test_a_worker_fails_a_planted_pickle_loudly_and_runs_the_next_job(
        redis_url: str, tmp_path: Path, app_keypair, caplog: pytest.LogCaptureFixture) -> None:
    canary = tmp_path / "canary"
    caplog.set_level(logging.INFO, logger="arq")

    async def scenario() -> tuple[int, int, object, object]:
        raw = aioredis.Redis.from_url(redis_url)
        now = int(time.time() * 1000)
        await raw.set("arq:job:planted", planted_job(canary))
        await raw.zadd(QUEUE, {"planted": now - 60_000})  # first in line
        await raw.aclose()
        pool = await job_queue.connect(redis_url)
        await pool.enqueue_job(HANDLE_DELIVERY, Delivery("d-1", "ping", b"{}", now), _job_id="good")
        try:
            worker = await run_burst(redis_url, tmp_path / "data", app_keypair[0])
            planted = await job_queue.job("planted", pool).result_info()
            good = await job_queue.job("good", pool).result(timeout=0)
        finally:
            await pool.aclose()
        return worker.jobs_failed, worker.jobs_complete, planted, good

    failed, complete, planted, good = asyncio.run(scenario())
    assert not canary.exists(), "the planted pickle ran in the worker"
    assert (failed, complete, good) == (1, 1, "ignored")  # the worker went on to the good job
    assert planted is not None and not planted.success  # type: ignore[attr-defined]
    assert isinstance(planted.result, JobFailed)  # type: ignore[attr-defined]
    assert "not Mull's msgpack" in planted.result.message  # type: ignore[attr-defined]
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR and "planted" in r.getMessage()]
    # One line with its reason (worker/jobs/log.py), the traceback only at DEBUG.
    assert logged and not logged[0].exc_info, "the refusal is logged as one line"
    assert "something else wrote to Redis" in logged[0].getMessage(), logged[0].getMessage()
