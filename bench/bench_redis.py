"""The Redis a benchmark writes to: a database it may empty, on the local server or an embedded one.

Benchmarks empty their database before and after a run, so they refuse one holding keys they did not
write: a database is theirs once it carries ``MARKER`` (set when a benchmark first finds it empty).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import redis

DEFAULT_URL = "redis://127.0.0.1:6379/1"  # db 0 is a developer's, 2-15 are the test suite's (tests/conftest.py)
MARKER = "mull-bench:owned"


def add_argument(parser) -> None:  # type: ignore[no-untyped-def]
    parser.add_argument("--redis-url", default=os.environ.get("MULL_BENCH_REDIS_URL", DEFAULT_URL),
                        help="an empty Redis database the benchmark may flush (default %(default)s; "
                             "the embedded Redis when nothing answers there)")


@contextlib.contextmanager
def bench_redis(url: str) -> Iterator[tuple[str, str]]:
    """(URL, description) of an emptied database, emptied again afterwards."""
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except (redis.RedisError, OSError):
        with tempfile.TemporaryDirectory(prefix="mull-bench-redis-") as scratch:
            from bot.embedded_redis import EmbeddedRedis

            embedded = EmbeddedRedis(Path(scratch))
            try:
                with _claimed(embedded.start()) as claimed:
                    yield claimed, f"embedded (nothing answered at {url})"
            finally:
                embedded.stop()
        return
    with _claimed(url) as claimed:
        yield claimed, url


@contextlib.contextmanager
def _claimed(url: str) -> Iterator[str]:
    client = redis.Redis.from_url(url)
    if client.dbsize() and not client.exists(MARKER):
        client.close()
        raise SystemExit(f"{url} holds keys a benchmark did not write; pass --redis-url (or "
                         "MULL_BENCH_REDIS_URL) naming an empty database")
    try:
        client.flushdb()
        client.set(MARKER, "1")
        yield url
    finally:
        client.flushdb()
        client.set(MARKER, "1")
        client.close()
