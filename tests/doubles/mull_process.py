"""Run ``mull web`` and ``mull worker`` as real processes, the way they run in production.

Each process logs JSON lines to a file the test can read (and search for secrets afterwards).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

MULL = str(Path(sys.executable).with_name("mull"))
PR_SET_PDEATHSIG = 1


def _die_with_test_run() -> None:
    """Runs in the child: SIGKILL it when the test process dies, so no run leaves workers behind."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MullProcess:
    def __init__(self, command: list[str], env: dict[str, str], log_path: Path, cwd: Path) -> None:
        self.command = command
        self.env = env
        self.log_path = log_path
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> MullProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen([MULL, *self.command], env=self.env, cwd=self.cwd, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True,
                                        preexec_fn=_die_with_test_run)
        log.close()
        return self

    def kill(self) -> None:
        """SIGKILL, as when a machine dies: no shutdown hooks run."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return bool(self.process) and self.process.poll() is None

    def wait_log(self, fragment: str, timeout: float = 30) -> None:
        """Until ``fragment`` is in the log; fails at once when the process exits first."""
        deadline = time.monotonic() + timeout
        while fragment not in self.log():
            assert self.alive(), f"mull {' '.join(self.command)} exited before logging {fragment!r}:\n{self.log()}"
            assert time.monotonic() < deadline, f"no {fragment!r} within {timeout} s:\n{self.log()}"
            time.sleep(0.05)

    def wait_ready(self, port: int, timeout: float = 30) -> None:
        """Until the web server on ``port`` answers /readyz with 200."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.alive(), f"mull {' '.join(self.command)} exited:\n{self.log()}"
            assert time.monotonic() < deadline, f"not ready within {timeout} s:\n{self.log()}"
            time.sleep(0.05)

    def wait_exit(self, timeout: float = 20) -> int:
        """The exit status, once the process has exited on its own (it is killed if it does not in time)."""
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"still running after {timeout} s:\n{self.log()}") from None


class MullCluster:
    """One ``mull web`` and any number of ``mull worker`` processes sharing one environment."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
                    **env, "MULL_PORT": str(self.port), "MULL_HOST": "127.0.0.1"}
        self.web: MullProcess | None = None
        self.workers: list[MullProcess] = []
        self.context: Callable[[], str] = lambda: ""  # more to show when a wait times out

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def webhook_url(self) -> str:
        return self.url + "/webhooks/github"

    def start_web(self, timeout: float = 20, **overrides: str) -> MullProcess:
        """``overrides``: variables of this process only (its own MULL_DATA_DIR, as on another machine)."""
        self.web = MullProcess(["web"], {**self.env, **overrides}, self.workdir / "web.log", self.workdir).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self.web
            except httpx.HTTPError:
                pass
            if not self.web.alive():
                raise RuntimeError("mull web exited:\n" + self.web.log())
            time.sleep(0.1)
        raise RuntimeError("mull web did not become ready:\n" + self.web.log())

    def start_worker(self, **overrides: str) -> MullProcess:
        worker = MullProcess(["worker"], {**self.env, **overrides}, self.workdir / f"worker-{len(self.workers)}.log",
                             self.workdir)
        self.workers.append(worker.start())
        return worker

    def logs(self) -> str:
        return "\n".join(p.log() for p in [self.web, *self.workers] if p)

    def stop(self) -> None:
        for process in [*self.workers, self.web]:
            if process:
                process.stop()
