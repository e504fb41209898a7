"""Two redis-servers and a Sentinel watching them, on this machine: a failover a test can cause and wait for.

Sentinel's ``down-after-milliseconds`` is 2000: at 500 or 1000 this Sentinel, alone and on a busy machine,
sometimes marks the replica it has just promoted as down within that time and fails back, which no operator
setting would do. A SIGKILLed master is replaced in about 4 s. Replicas sync without the diskless delay.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from .redis_process import RedisProcess

MASTER_NAME = "mymaster"
DOWN_AFTER_MS = 2000
FAST_SYNC = ["--repl-diskless-sync-delay", "0"]


def _wait(check, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except (redis.RedisError, OSError):
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class SentinelPair:
    """``nodes`` are the two redis-servers (the first starts as master); ``sentinel`` watches them."""

    def __init__(self, directory: Path) -> None:
        first = RedisProcess(directory / "node-a", extra=FAST_SYNC)
        second = RedisProcess(directory / "node-b", extra=[*FAST_SYNC, "--replicaof", "127.0.0.1", str(first.port)])
        self.nodes = [first, second]
        self.sentinel = RedisProcess(directory / "sentinel", sentinel=True)

    @property
    def url(self) -> str:
        """MULL_REDIS_URL for Mull: the Sentinel, the master's name, database 0."""
        return f"redis+sentinel://127.0.0.1:{self.sentinel.port}/{MASTER_NAME}/0"

    def start(self) -> SentinelPair:
        for node in self.nodes:
            node.start()
        self.sentinel.start()
        watch = self.sentinel.client()
        watch.execute_command("SENTINEL", "MONITOR", MASTER_NAME, "127.0.0.1", self.nodes[0].port, 1)
        watch.execute_command("SENTINEL", "SET", MASTER_NAME, "down-after-milliseconds", DOWN_AFTER_MS)
        watch.execute_command("SENTINEL", "SET", MASTER_NAME, "failover-timeout", 2000)
        self.wait_replicated()
        _wait(lambda: watch.execute_command("SENTINEL", "REPLICAS", MASTER_NAME), 15, "Sentinel to see the replica")
        return self

    def master(self) -> RedisProcess:
        """The node Sentinel names as master now."""
        _, port = self.sentinel.client().execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
        return next(node for node in self.nodes if node.port == int(port))

    def replica(self) -> RedisProcess:
        return next(node for node in self.nodes if node is not self.master())

    def kill_master(self) -> RedisProcess:
        """SIGKILL the master, as a crashed machine: Sentinel promotes the replica about 4 s later."""
        old = self.master()
        old.kill()
        return old

    def wait_promoted(self, old: RedisProcess, timeout: float = 30) -> RedisProcess:
        """Until Sentinel names another node and that node acts as master."""
        def promoted() -> RedisProcess | None:
            new = self.master()
            return new if new is not old and new.client().info("replication")["role"] == "master" else None
        return _wait(promoted, timeout, "Sentinel to promote the replica")

    def wait_replicated(self, timeout: float = 30) -> None:
        """Until the master has a replica in sync (``WAIT 1`` answers 1), e.g. a killed master back as replica."""
        def synced() -> bool:
            return int(self.master().client().execute_command("WAIT", 1, 200)) >= 1
        _wait(synced, timeout, "a replica in sync with the master")

    def switches(self) -> int:
        """How many times Sentinel has changed the master (``+switch-master`` in its log)."""
        return self.sentinel.log().count("+switch-master")

    def stop(self) -> None:
        for process in (self.sentinel, *self.nodes):
            process.kill()


@pytest.fixture
def sentinel_pair(tmp_path: Path) -> Iterator[SentinelPair]:
    """A master, its replica and a Sentinel monitoring them as ``mymaster``; ``.url`` is Mull's MULL_REDIS_URL."""
    pair = SentinelPair(tmp_path / "sentinel-pair")
    try:
        yield pair.start()
    finally:
        pair.stop()
