"""`mull worker` stops promptly and cleanly on Ctrl-C (SIGINT) and SIGTERM: the signal it got is the one it
logs (never arq's "shutdown on SIGUSR1"), and its shutdown hooks run, so it leaves the live workers' registry
itself instead of waiting for its heartbeat to lapse. A worker that cannot reach Redis says so in one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis
from doubles.fixtures import APP_ID
from doubles.mull_process import MULL, MullProcess, free_port

from bot import keys


def worker_env(tmp_path: Path, redis_url: str, github_url: str, model_url: str, private_key: str) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "MULL_REDIS_URL": redis_url,
            "MULL_APP_ID": str(APP_ID), "MULL_PRIVATE_KEY": private_key, "MULL_GITHUB_URL": github_url,
            "MULL_LLM_BASE_URL": model_url, "MULL_LLM_MODEL": "scripted", "MULL_SANDBOX": "false",
            "MULL_DATA_DIR": str(tmp_path / "data")}


def log_lines(process: MullProcess) -> list[dict[str, object]]:
    return [json.loads(line) for line in process.log().splitlines() if line.startswith("{")]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_worker_promptly_and_runs_its_shutdown(
        tmp_path: Path, redis_url: str, github_double, scripted_model, app_keypair, sig: signal.Signals) -> None:
    env = worker_env(tmp_path, redis_url, github_double.url, scripted_model.url, app_keypair[0])
    worker = MullProcess(["worker"], env, tmp_path / "worker.log", tmp_path).start()
    try:
        worker.wait_log('"worker started"')
        store = redis.Redis.from_url(redis_url)
        assert store.scard(keys.WORKERS) == 1  # registered while it runs
        asked = time.monotonic()
        os.killpg(worker.process.pid, sig)  # as a terminal's Ctrl-C does: the whole foreground group
        status = worker.wait_exit(20)
        took = time.monotonic() - asked
    finally:
        worker.kill()
    assert status == 0, worker.log()
    assert took < 10, f"took {took:.1f} s to stop"
    lines = log_lines(worker)
    stops = [line for line in lines if line["event"] == "worker stopping"]
    assert len(stops) == 1 and stops[0]["reason"] == sig.name, lines
    assert "SIGUSR1" not in worker.log() and "Traceback" not in worker.log()
    assert store.scard(keys.WORKERS) == 0, "the worker's shutdown did not run: it is still registered"


def test_a_worker_that_cannot_reach_redis_says_so_in_one_line(
        tmp_path: Path, github_double, scripted_model, app_keypair) -> None:
    unreachable = f"redis://:n0t-in-logs-pass@127.0.0.1:{free_port()}/0"
    env = worker_env(tmp_path, unreachable, github_double.url, scripted_model.url, app_keypair[0])
    started = time.monotonic()
    result = subprocess.run([MULL, "worker"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert time.monotonic() - started < 15
    [line] = result.stderr.strip().splitlines()
    assert "cannot reach Redis at redis://127.0.0.1:" in line and "connection refused" in line
    assert "start redis-server" in line and "unset MULL_REDIS_URL" in line
    assert "n0t-in-logs-pass" not in result.stderr + result.stdout
