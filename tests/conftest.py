"""Shared fixtures: a real Redis (the local server if one answers, else the embedded one)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bot.embedded_redis import EmbeddedRedis

LONGEST_FIRST = ("test_week_simulation.py",)  # minutes each: started first, they run beside everything else
# Tests that start mull processes without being end-to-end ones: seconds each, like the e2e tests.
PROCESS_TESTS = ("test_try.py", "test_cli.py", "test_serve_lifecycle.py", "test_bench_smoke.py", "test_sentinel.py",
                 "test_worker_stop.py", "test_agent_command.py", "test_startup_check.py", "test_setup_browser.py")
TEST_DBS = range(2, 16)  # keep clear of whatever a developer keeps in db 0; one per concurrent test run


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests first, then those that start processes, then the quick ones.

    With ``-n 3 --maxschedchunk 1`` (make test) each worker takes the next test when it is done with its
    current one, so the run follows this order across workers and ends on tests of milliseconds. In chunks
    (xdist's default), one worker is handed a run of end-to-end tests near the end and runs them alone while
    the others wait."""
    def weight(item: pytest.Item) -> int:
        if item.path.name in LONGEST_FIRST:
            return 0
        if item.get_closest_marker("e2e") or item.path.name in PROCESS_TESTS:
            return 1
        return 2

    items.sort(key=weight)


def _local_redis() -> str | None:
    url = os.environ.get("MULL_TEST_REDIS_URL", "redis://127.0.0.1:6379")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
    except (redis.RedisError, OSError):
        return None
    return url


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a real Redis server for the whole run."""
    url = _local_redis()
    if url:
        yield url
        return
    embedded = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    yield embedded.start()
    embedded.stop()


def _db_url(server: str, db: int) -> str:
    sep = "&" if "?" in server else "?"
    return f"{server}{sep}db={db}" if server.startswith("unix://") else f"{server.rstrip('/')}/{db}"


@pytest.fixture(scope="session")
def redis_db(redis_server: str) -> Iterator[int]:
    """A database number no other test run on this server is using (runs may overlap on a dev machine)."""
    claim = redis.Redis.from_url(_db_url(redis_server, 0))
    token = f"{os.getpid()}"
    for db in TEST_DBS:
        if claim.set(f"mull-tests:db:{db}", token, nx=True, ex=6 * 3600):
            yield db
            if claim.get(f"mull-tests:db:{db}") == token.encode():
                claim.delete(f"mull-tests:db:{db}")
            claim.close()
            return
    pytest.fail("every test database on this Redis is claimed by another run (keys mull-tests:db:* in db 0)")


@pytest.fixture
def redis_url(redis_server: str, redis_db: int) -> Iterator[str]:
    """A URL to an empty test database, flushed before and after each test."""
    url = _db_url(redis_server, redis_db)
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "mull-data"
    path.mkdir()
    return path


from doubles.browser import browser  # noqa: E402,F401  (fixture)
from doubles.e2e import mull  # noqa: E402,F401  (fixture)
from doubles.fixtures import app_keypair, github_double, scripted_model  # noqa: E402,F401  (fixtures)
from doubles.sentinel import sentinel_pair  # noqa: E402,F401  (fixture)
