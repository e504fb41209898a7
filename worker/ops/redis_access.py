"""Which Redis a command talks to, and whether it answers, decided before the command starts its work.

Every command that needs Redis goes through ``redis_for``: a Redis that does not answer is one line naming it
(never its password) and the fix, instead of a minute of retries ending in a traceback. Long-running commands
own the embedded Redis of their data directory; ``mull status`` only ever joins the one a running Mull owns, so
asking in a directory where nothing runs starts and creates nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, RedisError, ResponseError

from bot import logs, redis_target
from bot.embedded_redis import EmbeddedRedis, running_url
from bot.redaction import Redactor
from bot.settings import MullSettings

# A Redis that is only slow to accept still answers within this; one that is not there is said at once.
STARTUP_KEEP_TRYING_S = 3.0


class RedisUnavailable(Exception):
    """The configured Redis cannot be used; the message names it and says what to do."""


class NothingRunning(Exception):
    """No Mull runs in this directory (no MULL_REDIS_URL, and no embedded Redis owned by a running Mull)."""


def embedded_directory(settings: MullSettings) -> Path:
    return settings.data_dir / "redis"


async def _ping(url: str) -> None:
    client = redis_target.parse(url).client(Redis, keep_trying=STARTUP_KEEP_TRYING_S, socket_connect_timeout=2,
                                            socket_timeout=5)
    try:
        await client.ping()
    finally:
        await client.aclose()


def check_answers(url: str, secrets: list[str]) -> None:
    """Raise RedisUnavailable unless the Redis at ``url`` answers a PING."""
    where = redis_target.parse(url).describe()
    try:
        asyncio.run(_ping(url))
    except AuthenticationError:
        raise RedisUnavailable(f"Redis at {where} refused the credentials: fix the password in MULL_REDIS_URL "
                               "(redis://:PASSWORD@HOST:6379/0), or unset MULL_REDIS_URL to use the embedded "
                               "Redis") from None
    except ResponseError as exc:  # e.g. NOAUTH: a password is needed and none was given
        reason = Redactor(secrets).text(str(exc))
        raise RedisUnavailable(f"Redis at {where} refused Mull ({reason}): check MULL_REDIS_URL, or unset it to "
                               "use the embedded Redis") from None
    except (RedisError, OSError) as exc:
        reason = Redactor(secrets).text(_reason(exc))
        raise RedisUnavailable(f"cannot reach Redis at {where} ({reason}): start redis-server there, or unset "
                               "MULL_REDIS_URL to use the embedded Redis") from None


def _reason(exc: BaseException) -> str:
    """The operating system's words when it has some ("connection refused"), else redis-py's first sentence."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and (seen.errno or seen.strerror):
            return (os.strerror(seen.errno) if seen.errno and seen.errno > 0 else str(seen.strerror)).lower()
        seen = seen.__cause__ or seen.__context__
    text = str(exc).strip()
    return text.split(". ")[0].rstrip(".") if text else type(exc).__name__


@contextlib.contextmanager
def redis_for(settings: MullSettings, *, join: bool = False, start: bool = True) -> Iterator[str]:
    """The URL of the Redis this command uses, for the life of the command.

    MULL_REDIS_URL once it answers; else the embedded server under MULL_DATA_DIR. ``join``: use the one a running
    Mull owns there if there is one. ``start``: otherwise own one (start it, stop it at the end); without it,
    NothingRunning.
    """
    if settings.redis_url:
        check_answers(settings.redis_url, settings.secret_values())
        yield settings.redis_url
        return
    directory = embedded_directory(settings)
    running = running_url(directory) if join else None
    if running:
        yield running
        return
    if not start:
        raise NothingRunning(
            f"nothing is running here: no Mull runs an embedded Redis in {directory.resolve()} and MULL_REDIS_URL "
            "is unset; start Mull with `mull serve` in this directory, or set MULL_REDIS_URL to the Redis your "
            "Mull uses")
    embedded = EmbeddedRedis(directory)
    url = embedded.start()
    logs.get("mull").info("embedded redis started", socket=str(embedded.socket))
    try:
        yield url
    finally:
        embedded.stop()
