"""No network from inside the sandbox but the model gateway, reached through the bridge.

Real bwrap, real sockets: a server on the host's loopback, Redis's port and a link-local metadata address
stay out of reach; a unix-socket "gateway" on the host answers at gateway_url() inside, and nothing else
does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from doubles.sandboxes import gateway_socket, needs_bwrap, run_python, running

from worker.agent import bridge
from worker.agent.sandbox import GATEWAY_PORT, SandboxSpec, gateway_url, run_command

CONFINED = SandboxSpec(enabled=True)
UNCONFINED = SandboxSpec(enabled=False)


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "worktrees" / "issue-1"
    path.mkdir(parents=True)
    return path


CONNECT = """
import errno, socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10).close()
    print("CONNECTED")
except OSError as exc:
    print("failed:", errno.errorcode.get(exc.errno, exc))
"""


@needs_bwrap
def test_a_server_on_the_hosts_loopback_is_unreachable(worktree: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = str(server.getsockname()[1])
        assert "CONNECTED" in run_python(CONNECT, worktree, UNCONFINED, "127.0.0.1", port).output  # the probe works
        assert "failed: ECONNREFUSED" in run_python(CONNECT, worktree, CONFINED, "127.0.0.1", port).output


@needs_bwrap
def test_redis_is_unreachable(worktree: Path) -> None:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=2).close()
        listener = None  # a Redis answers there already
    except OSError:
        listener = socket.create_server(("127.0.0.1", 6379))
    try:
        result = run_python(CONNECT, worktree, CONFINED, "127.0.0.1", "6379")
    finally:
        if listener:
            listener.close()
    assert "failed: ECONNREFUSED" in result.output, result.output


@needs_bwrap
def test_link_local_metadata_fails_at_once(worktree: Path) -> None:
    started = time.monotonic()
    result = run_python(CONNECT, worktree, CONFINED, "169.254.169.254", "80")
    assert "failed: ENETUNREACH" in result.output, result.output
    assert time.monotonic() - started < 5  # no route at all, not a hang until a timeout


# -- the bridge to the gateway ---------------------------------------------------------------------------

ASK_GATEWAY = """
import socket, sys, urllib.request
print(urllib.request.urlopen(sys.argv[1] + "/v1/models", timeout=10).read().decode())
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=5).close()
    print("OTHER PORT OPEN")
except OSError as exc:
    print("other port:", exc.strerror)
sys.exit(7)
"""


@needs_bwrap
def test_the_gateway_answers_through_the_bridge_and_nothing_else_does(worktree: Path) -> None:
    with gateway_socket() as path:
        result = run_python(ASK_GATEWAY, worktree, SandboxSpec(gateway_socket=path), gateway_url(),
                            str(GATEWAY_PORT + 1))
    assert "gateway answered /v1/models" in result.output, result.output
    assert "other port: Connection refused" in result.output
    assert result.exit_code == 7  # the command's, through the bridge and bwrap


@needs_bwrap
def test_without_a_gateway_socket_nothing_listens_at_the_gateway_port(worktree: Path) -> None:
    result = run_python(CONNECT, worktree, CONFINED, "127.0.0.1", str(GATEWAY_PORT))
    assert "failed: ECONNREFUSED" in result.output, result.output


@needs_bwrap
def test_timeout_kills_the_bridge_and_everything_under_it(worktree: Path) -> None:
    marker = f"100.{os.getpid()}7"
    started = time.monotonic()
    with gateway_socket() as path:
        result = asyncio.run(run_command(f"sleep {marker}1 & sleep {marker}2", worktree,
                                         SandboxSpec(gateway_socket=path), 1))
    assert result.timed_out and result.exit_code is None
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 3
    while running(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running(marker) == []


@pytest.fixture
def bridged(tmp_path: Path) -> Iterator[Callable[[str], subprocess.Popen[str]]]:
    """Runs the bridge directly on the host (any free port) around a shell script; kills what is left after."""
    started: list[subprocess.Popen[str]] = []

    def start(script: str) -> subprocess.Popen[str]:
        with socket.create_server(("127.0.0.1", 0)) as probe:
            port = probe.getsockname()[1]
        proc = subprocess.Popen([sys.executable, "-I", "-S", bridge.__file__, str(port), str(tmp_path / "gw.sock"),
                                 "--", "sh", "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_the_bridge_passes_sigterm_on_and_returns_the_commands_exit_code(bridged: Any) -> None:
    proc = bridged("trap 'echo got-term; exit 42' TERM; echo ready; while :; do sleep 0.05; done")
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 42
    assert proc.stdout.read() == "got-term\n"


def test_the_bridge_reports_a_command_killed_by_a_signal_as_the_shell_does(bridged: Any) -> None:
    proc = bridged("echo ready; kill -KILL $$")
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    assert proc.wait(10) == 128 + signal.SIGKILL
