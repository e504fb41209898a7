"""Shared fixtures: a real Redis (the local server if one answers, else the embedded one)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bot.embedded_redis import EmbeddedRedis

TEST_DB = 9  # keep clear of whatever a developer keeps in db 0


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


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """A URL to an empty test database, flushed before and after each test."""
    sep = "&" if "?" in redis_server else "?"
    url = (f"{redis_server}{sep}db={TEST_DB}" if redis_server.startswith("unix://")
           else f"{redis_server.rstrip('/')}/{TEST_DB}")
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


from doubles.fixtures import app_keypair, github_double, scripted_model  # noqa: E402,F401  (fixtures)
