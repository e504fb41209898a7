"""`mull serve` and `mull web` from start to stop, as a newcomer meets them: a port that is taken, Ctrl-C and
SIGTERM, a part that dies, two Mulls in one directory, a SIGKILLed Mull and its embedded Redis. Each runs the
real command against the real Redis or the embedded one, on free ports, and is stopped whatever happens."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import redis
from doubles.fixtures import APP_ID
from doubles.mull_process import MULL, MullProcess, free_port

from bot.redaction import Redactor
from worker.ops.supervise import Part, PartFailed, supervise

BASE_ENV = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}


@pytest.fixture
def app_env(tmp_path: Path, github_double, scripted_model, app_keypair) -> dict[str, str]:
    """Everything `mull serve` needs, on the embedded Redis under tmp_path/data."""
    return {**BASE_ENV, "MULL_APP_ID": str(APP_ID), "MULL_PRIVATE_KEY": app_keypair[0],
            "MULL_WEBHOOK_SECRET": github_double.webhook_secret, "MULL_GITHUB_URL": github_double.url,
            "MULL_LLM_BASE_URL": scripted_model.url, "MULL_LLM_MODEL": "scripted", "MULL_SANDBOX": "false",
            "MULL_DATA_DIR": str(tmp_path / "data")}


def web_env(data_dir: Path, port: int, **more: str) -> dict[str, str]:
    """`mull web` needs only the webhook secret; without MULL_REDIS_URL it owns the embedded Redis."""
    return {**BASE_ENV, "MULL_WEBHOOK_SECRET": "s" * 24, "MULL_DATA_DIR": str(data_dir), "MULL_PORT": str(port),
            **more}


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MULL, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60)


def events(process: MullProcess) -> list[dict[str, object]]:
    return [json.loads(line) for line in process.log().splitlines() if line.startswith("{")]


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def gone(pid: int) -> bool:
    """Exited, or a zombie that nobody has reaped yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


# -- a taken port -----------------------------------------------------------------------------------------------


def test_a_taken_port_is_one_line_and_exit_2_before_anything_starts(
        tmp_path: Path, app_env: dict[str, str], redis_url: str) -> None:
    port = free_port()
    first = MullProcess(["web"], web_env(tmp_path / "first", port, MULL_REDIS_URL=redis_url),
                        tmp_path / "first.log", tmp_path).start()
    try:
        first.wait_ready(port)
        started = time.monotonic()
        serve = run(["serve"], {**app_env, "MULL_PORT": str(port)}, tmp_path)
        assert time.monotonic() - started < 20
        web = run(["web"], web_env(tmp_path / "second", port), tmp_path)
        for second in (serve, web):
            assert second.returncode == 2, second.stderr
            [line] = second.stderr.strip().splitlines()  # no "worker started", no Redis line before it
            assert line.startswith(f"mull: port {port} is taken on 127.0.0.1") and "MULL_PORT" in line, line
            assert "--port" in line and "Traceback" not in second.stderr
        assert not (tmp_path / "data" / "redis").exists()  # serve stopped before its embedded Redis
        assert not (tmp_path / "second").exists()
        # the good case beside it: the first one serves on, and --port moves the second one elsewhere
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
        other = free_port()
        moved = MullProcess(["web", "--port", str(other)], web_env(tmp_path / "second", port),
                            tmp_path / "moved.log", tmp_path).start()
        try:
            moved.wait_ready(other)
        finally:
            moved.stop()
    finally:
        first.stop()


# -- stopping ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_serve_promptly_and_cleanly(tmp_path: Path, app_env: dict[str, str],
                                                   sig: signal.Signals) -> None:
    port = free_port()
    serve = MullProcess(["serve"], {**app_env, "MULL_PORT": str(port)}, tmp_path / "serve.log", tmp_path).start()
    try:
        serve.wait_ready(port)
        serve.wait_log('"worker started"')
        socket_path = tmp_path / "data" / "redis" / "redis.sock"
        redis_pid = int(redis.Redis(unix_socket_path=str(socket_path)).info("server")["process_id"])
        asked = time.monotonic()
        os.killpg(serve.process.pid, sig)  # a terminal's Ctrl-C reaches the whole foreground group
        status = serve.wait_exit(20)
        took = time.monotonic() - asked
    finally:
        serve.kill()
    assert status == 0, serve.log()
    assert took < 10, f"took {took:.1f} s to stop"
    lines = events(serve)
    assert [line["signal"] for line in lines if line["event"] == "stopping"] == [sig.name]
    assert [line["reason"] for line in lines if line["event"] == "worker stopping"] == [sig.name]
    assert "SIGUSR1" not in serve.log() and "Traceback" not in serve.log()
    assert port_is_free(port)
    deadline = time.monotonic() + 10
    while not gone(redis_pid):  # stopped by Mull on its way out
        assert time.monotonic() < deadline, "the embedded Redis outlived mull serve"
        time.sleep(0.05)


def test_a_part_that_dies_stops_serve_with_one_line(tmp_path: Path, app_env: dict[str, str]) -> None:
    """The worker cannot start (its transcripts directory is a file): serve must not go on as a bare receiver."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "transcripts").write_text("not a directory")
    port = free_port()
    serve = MullProcess(["serve"], {**app_env, "MULL_PORT": str(port)}, tmp_path / "serve.log", tmp_path).start()
    try:
        status = serve.wait_exit(30)
    finally:
        serve.kill()
    assert status == 1, serve.log()
    last = serve.log().strip().splitlines()[-1]
    assert last.startswith("mull: the worker stopped: FileExistsError") and "transcripts" in last, last
    assert "Mull stopped its other parts too" in last
    assert port_is_free(port)  # the web server went down with it
    assert not (data / "redis" / "redis.sock").exists() or not _answers(data / "redis" / "redis.sock")

    (data / "transcripts").unlink()  # the good case beside it: fixed, the same command serves
    again = MullProcess(["serve"], {**app_env, "MULL_PORT": str(port)}, tmp_path / "again.log", tmp_path).start()
    try:
        again.wait_ready(port)
        again.wait_log('"worker started"')
        assert again.alive()
    finally:
        again.stop()
    assert again.process.returncode == 0, again.log()


def _answers(path: Path) -> bool:
    try:
        return bool(redis.Redis(unix_socket_path=str(path), socket_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


# -- the embedded Redis: one owner, and it dies with it ---------------------------------------------------------


def test_a_second_mull_in_the_same_directory_is_refused_and_status_joins_the_first(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    first = MullProcess(["web"], web_env(data, port), tmp_path / "first.log", tmp_path).start()
    try:
        first.wait_ready(port)
        second = run(["web"], web_env(data, free_port()), tmp_path)
        assert second.returncode == 2, second.stderr
        [line] = second.stderr.strip().splitlines()
        assert f"another Mull (pid {first.process.pid}) already runs the embedded Redis in {data / 'redis'}" in line
        assert "MULL_DATA_DIR" in line and "MULL_REDIS_URL" in line
        # the first one is untouched, and a command that only reads joins its Redis
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
        status = run(["status", "--json"], web_env(data, port), tmp_path)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["queued"] == []
    finally:
        first.stop()
    assert first.process.returncode == 0, first.log()


def test_a_sigkilled_mull_leaves_no_redis_server_behind(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    web = MullProcess(["web"], web_env(data, port), tmp_path / "web.log", tmp_path).start()
    try:
        web.wait_ready(port)
        redis_pid = int(redis.Redis(unix_socket_path=str(data / "redis" / "redis.sock")).info("server")["process_id"])
        os.kill(web.process.pid, signal.SIGKILL)  # only Mull: nothing of it runs to stop its Redis
        web.process.wait()
        deadline = time.monotonic() + 10
        while not gone(redis_pid):
            assert time.monotonic() < deadline, "redis-server was orphaned by the SIGKILLed mull"
            time.sleep(0.05)
    finally:
        web.kill()
    # the good case beside it: the directory is free again for the next Mull
    again = MullProcess(["web"], web_env(data, port), tmp_path / "again.log", tmp_path).start()
    try:
        again.wait_ready(port)
    finally:
        again.stop()
    assert again.process.returncode == 0, again.log()


# -- the supervisor itself, in process ---------------------------------------------------------------------------


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, object]]] = []

    def info(self, event: str, **fields: object) -> None:
        self.lines.append((event, fields))

    error = info


def waiting_part(name: str, stops: list[tuple[str, int, bool]], *, ends_after_stops: int = 1) -> Part:
    """A part that runs until asked to stop ``ends_after_stops`` times."""
    stopped = asyncio.Event()

    def stop(sig: int, force: bool) -> None:
        stops.append((name, sig, force))
        if sum(1 for who, _, _ in stops if who == name) >= ends_after_stops:
            stopped.set()

    return Part(name, stopped.wait, stop)


def test_a_signal_stops_every_part_and_a_second_one_forces_them() -> None:
    async def scenario() -> list[tuple[str, int, bool]]:
        stops: list[tuple[str, int, bool]] = []
        parts = [waiting_part("web server", stops), waiting_part("worker", stops, ends_after_stops=2)]
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)
        loop.call_later(0.15, os.kill, os.getpid(), signal.SIGINT)  # the worker is slow: Ctrl-C again
        await supervise(parts, Log(), Redactor([]))
        return stops

    stops = asyncio.run(scenario())
    assert stops == [("web server", signal.SIGTERM, False), ("worker", signal.SIGTERM, False),
                     ("worker", signal.SIGINT, True)]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handed back


def test_a_part_that_fails_or_returns_stops_the_others_and_is_named() -> None:
    async def crashing() -> None:
        raise FileExistsError("[Errno 17] File exists: '/data/transcripts' with s3cret-value-here")

    async def returning() -> None:
        return None

    async def scenario(first: Part) -> tuple[str, list[tuple[str, int, bool]]]:
        stops: list[tuple[str, int, bool]] = []
        with pytest.raises(PartFailed) as failed:
            await supervise([first, waiting_part("web server", stops)], Log(), Redactor(["s3cret-value-here"]))
        return str(failed.value), stops

    message, stops = asyncio.run(scenario(Part("worker", crashing, lambda sig, force: None)))
    assert message.startswith("the worker stopped: FileExistsError: [Errno 17] File exists: '/data/transcripts'")
    assert "s3cret-value-here" not in message and message.endswith("Mull stopped its other parts too")
    assert stops == [("web server", signal.SIGTERM, False)]

    message, _ = asyncio.run(scenario(Part("worker", returning, lambda sig, force: None)))
    assert message.startswith("the worker stopped on its own")


def test_a_lone_part_that_returns_is_a_normal_end() -> None:
    async def burst() -> None:  # `mull worker --burst` once the queue is empty
        return None

    asyncio.run(supervise([Part("worker", burst, lambda sig, force: None)], Log(), Redactor([])))
