"""A lock between the processes of one machine that dies with its holder: ``flock`` on a file.

A Redis lock taken with a timeout outlives a SIGKILLed holder until that timeout runs out; for the repo mirror
(fetches can take minutes, so its timeout is long) every later run on the repository would wait that long.
The kernel drops a ``flock`` the moment the process holding it dies, however it dies. Locks are per open file
description, so two holders in one process exclude each other too.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

FIRST_PAUSE_S = 0.02
LONGEST_PAUSE_S = 0.5


class LockTimeout(TimeoutError):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__(f"{path} stayed locked by another run on this machine for {timeout:g} s; a process "
                         "holding it is still working (a long git fetch?) or hangs")


@contextlib.asynccontextmanager
async def file_lock(path: Path, timeout: float) -> AsyncIterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for the block; LockTimeout after ``timeout`` s.

    Waits by polling, so a cancelled waiter leaves at once and no thread sits blocked in the kernel."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)  # never inherited by a git child
    try:
        deadline, pause = time.monotonic() + timeout, FIRST_PAUSE_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() + pause > deadline:
                    raise LockTimeout(path, timeout) from None
                await asyncio.sleep(pause)
                pause = min(pause * 2, LONGEST_PAUSE_S)
        yield
    finally:
        os.close(fd)  # closing the only descriptor releases the lock
