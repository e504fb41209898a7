"""Run agent commands confined: bubblewrap, a clean environment, a hard timeout per command.

Agent commands come from a model that read untrusted issue text, so they run with no secrets in their
environment and (under bubblewrap, ``worker/agent/bwrap.py``) see nothing of the host but the toolchain,
their tree and the model gateway. Every command gets its own process group, which is killed whole on
timeout; under bubblewrap the command's PID namespace dies with it.

With MULL_SANDBOX=false (trusted development only) a command runs unconfined: it sees the whole machine
and its network. A ``gateway_socket`` (and an ``egress_socket``) is then bridged to ``gateway_port`` (and
``egress_port``) on the host's loopback, which the caller chose free, so a CLI agent reaches its model the same
way in both modes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from worker.agent import bridge
from worker.agent.bwrap import (
    BWRAP_FIX,
    GATEWAY_PORT,
    SANDBOX_HOME,
    SandboxSpec,
    SandboxUnavailable,
    bridges,
    bwrap_argv,
    bwrap_binary,
    gateway_url,
    mull_python,
)

__all__ = ["GATEWAY_PORT", "SANDBOX_HOME", "CommandResult", "SandboxSpec", "SandboxUnavailable", "bwrap_argv",
           "check_bwrap", "clean_env", "free_port", "gateway_url", "run_argv", "run_command"]

_PASSED_VARS = ("PATH", "LANG", "LC_ALL", "TERM", "TZ")
_REFUSED_PREFIXES = ("MULL_", "GITHUB_", "GH_")
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
_POLL = 0.02  # seconds between checks whether a command has exited
_DRAIN_GRACE = 2.0  # seconds to collect output after the process group is gone


@dataclass(frozen=True)
class CommandResult:
    exit_code: int | None  # None when killed on timeout
    output: str  # stdout and stderr merged, truncated with a marker
    timed_out: bool


def clean_env(extra: Mapping[str, str] | None = None, *, home: str = SANDBOX_HOME) -> dict[str, str]:
    """An allow-listed environment: nothing else from ``os.environ`` reaches an agent command."""
    env = {name: os.environ[name] for name in _PASSED_VARS if name in os.environ}
    env.setdefault("PATH", _DEFAULT_PATH)
    env["HOME"] = home
    for name, value in (extra or {}).items():
        if name.upper().startswith(_REFUSED_PREFIXES):
            raise ValueError(
                f"refusing to pass {name} to an agent command: MULL_*, GITHUB_* and GH_* variables hold "
                "Mull's own credentials"
            )
        env[name] = value
    return env


def check_bwrap() -> None:
    """Fail at startup, with the fix, rather than on the first agent command: start one real sandbox."""
    if bwrap_binary() is None:
        raise SandboxUnavailable(f"bwrap not found on PATH: {BWRAP_FIX}")
    mull_python()  # the gateway bridge runs on it; refused here when it cannot be shown to the sandbox
    env = clean_env()
    with tempfile.TemporaryDirectory(prefix="mull-bwrap-check-") as tree:
        argv = bwrap_argv(["true"], Path(tree), SandboxSpec(), env)
        try:
            done = subprocess.run(argv, capture_output=True, timeout=30, check=False, env=env)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SandboxUnavailable(f"bwrap cannot start a sandbox ({exc}): {BWRAP_FIX}") from None
    if done.returncode != 0:
        stderr = done.stderr.decode(errors="replace").strip() or f"exit code {done.returncode}"
        raise SandboxUnavailable(
            f"bwrap cannot start a sandbox here ({stderr}): allow unprivileged user namespaces, "
            f"or {BWRAP_FIX}"
        )


async def run_command(command: str, cwd: Path, spec: SandboxSpec, timeout: float,
                      output_limit: int = 30000) -> CommandResult:
    """Run a shell command line in ``cwd`` (the run's tree)."""
    return await run_argv(["sh", "-c", command], cwd, spec, timeout, output_limit)


async def run_argv(argv: list[str], cwd: Path, spec: SandboxSpec, timeout: float,
                   output_limit: int = 30000) -> CommandResult:
    """Run ``argv`` without a shell in ``cwd`` (the run's tree), confined as ``spec`` says."""
    if spec.enabled:
        env = clean_env(spec.env)
        return await _run(bwrap_argv(argv, cwd, spec, env), cwd, env, timeout, output_limit)
    bridged = bridges(spec, inside=False)
    if bridged:
        argv = [sys.executable, "-I", "-S", bridge.__file__, *bridged, "--", *argv]
    with tempfile.TemporaryDirectory(prefix="mull-home-") as home:
        env = clean_env(spec.env, home=home)
        return await _run(argv, cwd, env, timeout, output_limit)


def free_port() -> int:
    """A loopback port nobody listens on now: where an unconfined run's bridge listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float, limit: int) -> CommandResult:
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, start_new_session=True,
    )
    assert proc.stdout is not None
    output = _Output(limit)
    reader = asyncio.create_task(output.drain(proc.stdout))
    timed_out = False
    try:
        try:
            await asyncio.wait_for(_exited(proc), timeout)
        except TimeoutError:
            timed_out = True
    finally:
        # Also on success and on cancellation: background processes the command left behind die with it.
        _kill_group(proc.pid)
        await _exited(proc)  # asyncio's child watcher has reaped it once returncode is set
        try:
            await asyncio.wait_for(asyncio.shield(reader), _DRAIN_GRACE)
        except TimeoutError:
            reader.cancel()  # something escaped the group and holds the pipe; keep what we have
            with contextlib.suppress(asyncio.CancelledError):
                await reader
    return CommandResult(exit_code=None if timed_out else proc.returncode, output=output.text(),
                         timed_out=timed_out)


async def _exited(proc: asyncio.subprocess.Process) -> None:
    """Until the process has exited and been reaped.

    Not ``proc.wait()``: on Python 3.11 it also waits for the pipe to close, which a background child
    holding stdout would delay until the timeout, or forever if that child left the process group.
    """
    while proc.returncode is None:
        await asyncio.sleep(_POLL)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class _Output:
    """Keeps the head and tail of a stream: a test run's verdict is at its end."""

    def __init__(self, limit: int) -> None:
        self._head_limit = limit // 3
        self._tail_limit = limit - self._head_limit
        self._head = bytearray()
        self._tail = bytearray()
        self._dropped = 0

    async def drain(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(65536):
            self._add(chunk)

    def _add(self, chunk: bytes) -> None:
        room = self._head_limit - len(self._head)
        if room > 0:
            self._head += chunk[:room]
            chunk = chunk[room:]
        self._tail += chunk
        excess = len(self._tail) - self._tail_limit
        if excess > 0:
            del self._tail[:excess]
            self._dropped += excess

    def text(self) -> str:
        head = self._head.decode(errors="replace")
        tail = self._tail.decode(errors="replace")
        if not self._dropped:
            return head + tail
        return f"{head}\n[output truncated: {self._dropped} more bytes]\n{tail}"
