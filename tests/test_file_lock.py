"""The repo mirror's lock is a file lock: holders exclude each other (in one process and across processes), a
SIGKILLed holder releases it at once, and a wait that lasts too long ends with an error naming the file."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from worker.trees.file_lock import LockTimeout, file_lock
from worker.trees.repo_cache import RepoCache

HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(600)
"""


def test_two_holders_in_one_process_take_turns(tmp_path: Path) -> None:
    order: list[str] = []

    async def hold(name: str, seconds: float) -> None:
        async with file_lock(tmp_path / "m.lock", timeout=5):
            order.append(f"{name} in")
            await asyncio.sleep(seconds)
            order.append(f"{name} out")

    async def scenario() -> None:
        first = asyncio.create_task(hold("a", 0.2))
        await asyncio.sleep(0.05)
        await hold("b", 0)
        await first

    asyncio.run(scenario())
    assert order == ["a in", "a out", "b in", "b out"]


def test_a_killed_holder_releases_the_lock_at_once(tmp_path: Path) -> None:
    """A Redis lock would stay taken for its whole timeout (15 minutes for a mirror) after its holder died."""
    path = tmp_path / "mirrors" / "7.lock"
    path.parent.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"

        async def blocked() -> None:
            async with file_lock(path, timeout=0.3):
                pass

        with pytest.raises(LockTimeout, match=r"7\.lock stayed locked by another run on this machine for 0\.3 s"):
            asyncio.run(blocked())
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()

        async def taken() -> float:
            began = time.monotonic()
            async with file_lock(path, timeout=5):
                return time.monotonic() - began

        assert asyncio.run(taken()) < 0.5
    finally:
        holder.kill()
        holder.wait()


def test_the_mirror_fetch_waits_for_the_lock_a_killed_worker_held(tmp_path: Path) -> None:
    """The mirror's lock file sits beside the mirrors, one per repository."""
    cache = RepoCache(tmp_path / "repos")
    path = cache.mirror_path(7).with_suffix(".lock")
    path.parent.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"

        async def locked() -> bool:
            try:
                async with asyncio.timeout(0.3):
                    async with cache._locked(7):
                        return True
            except TimeoutError:
                return False

        assert asyncio.run(locked()) is False
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        assert asyncio.run(locked()) is True
    finally:
        holder.kill()
        holder.wait()
