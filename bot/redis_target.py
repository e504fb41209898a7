"""Where Mull's Redis is (``MULL_REDIS_URL``): one server, or the master a set of Redis Sentinels points to.

Every Redis client of Mull (receiver, worker, ``mull status``, ``mull retry-deliveries``) is made here, so a
Sentinel URL works everywhere, and every client rides out a failover the same way: a connection error is
retried, through Sentinel's answer of who the master is now, for as long as its caller can afford to wait.

Accepted forms (passwords percent-encoded, like any URL)::

    redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]          rediss:// for TLS
    unix://[[USER]:PASSWORD@]/PATH/redis.sock[?db=DB]
    redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/MASTER[/DB][?sentinel_password=P]
    rediss+sentinel://...                                TLS to the Sentinels and to the master

In the Sentinel form the hosts are the Sentinels (port 26379 unless given), MASTER is the name they monitor,
and the user and password are the master's. Sentinels with a password of their own (``requirepass`` in
sentinel.conf) take it from ``sentinel_password`` (and ``sentinel_username``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection, Connection, SSLConnection, UnixDomainSocketConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelManagedConnection
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

SENTINEL_PORT = 26379
PLAIN_SCHEMES = ("redis", "rediss", "unix")
SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}  # scheme -> TLS
SENTINEL_PARAMETERS = ("sentinel_password", "sentinel_username")
SENTINEL_FORM = "redis+sentinel://[:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/MASTER[/DB]"
EXAMPLE = "redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2:26379/mymaster/0"
PLAIN_EXAMPLE = "redis://:s3cret@127.0.0.1:6379/0"

T = TypeVar("T")
R = TypeVar("R", bound=Redis)


class RedisUrlError(ValueError):
    """MULL_REDIS_URL cannot be used; the message says what is wrong and shows a form that works."""


@dataclass(frozen=True)
class RedisTarget:
    """A parsed MULL_REDIS_URL. ``url`` and the passwords stay out of ``repr``: they are secrets."""

    url: str = field(repr=False)
    sentinels: tuple[tuple[str, int], ...] = ()
    master: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)
    tls: bool = False

    @property
    def sentinel(self) -> bool:
        return bool(self.sentinels)

    def secrets(self) -> list[str]:
        """The passwords in the URL, for the redactor."""
        return [s for s in (self.password, self.sentinel_password) if s]

    def describe(self) -> str:
        """Where Redis is, without credentials: safe for a log line."""
        if self.sentinel:
            hosts = ",".join(f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in self.sentinels)
            return f"master '{self.master}' (db {self.db}) via Sentinel {hosts}"
        parts = urlsplit(self.url)
        location = parts.path if parts.scheme == "unix" else parts.netloc.rpartition("@")[2] + parts.path
        return f"{parts.scheme}://{location}"

    def client(self, redis_class: type[R], *, keep_trying: float, retry_timeouts: bool = False,
               **kwargs: Any) -> R:
        """A client (``redis_class``, e.g. arq's ArqRedis) that retries connection errors for ``keep_trying`` s.

        Each retry opens a new connection, which in Sentinel mode first asks the Sentinels for the master: a
        failover shows as a pause. ``retry_timeouts`` retries timed-out commands too (a hung master), which
        may run a command twice; the receiver, which must answer GitHub within 10 s, does not.
        """
        errors: list[type[RedisError]] = [RedisConnectionError, RedisTimeoutError] if retry_timeouts \
            else [RedisConnectionError]
        # redis-py opens a connection with this same policy, outside the command's own retry, and there a
        # refused or timed-out connect is a bare OSError: without it, a command sent while Redis restarts
        # fails at once instead of waiting for it.
        kwargs.update(retry=RetryWithin(keep_trying, (*errors, OSError)), retry_on_error=errors)
        if not self.sentinel:
            client = redis_class.from_url(self.url, **kwargs)
            pool = client.connection_pool
            pool.connection_class = STEADY_CONNECTIONS.get(pool.connection_class, pool.connection_class)
            return client
        sentinel_kwargs = {k: v for k, v in kwargs.items() if k.startswith("socket_")}
        sentinel_kwargs.update(username=self.sentinel_username, password=self.sentinel_password, ssl=self.tls)
        sentinels = Sentinel(list(self.sentinels), sentinel_kwargs=sentinel_kwargs)
        return sentinels.master_for(self.master, redis_class=redis_class, db=self.db, username=self.username,
                                    password=self.password, ssl=self.tls,
                                    connection_class=MasterConnectionTLS if self.tls else MasterConnection,
                                    **kwargs)


class ClosedTransportIsConnectionLost:
    """A write on a connection whose socket has closed raises redis' ConnectionError, which the client retries.

    On uvloop (Mull's event loop) that write raises ``RuntimeError: unable to perform operation on
    <TCPTransport closed=True>; the handler is closed``, where asyncio's own loop lets the next read report
    the lost connection. redis-py passes the RuntimeError through untouched, so a Redis restart that closed a
    connection between its check and its use ended the caller (a worker's poll loop, a job) instead of
    reconnecting.
    """

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        try:
            await super().send_packed_command(command, check_health)  # type: ignore[misc]
        except RuntimeError as exc:
            if "handler is closed" not in str(exc):
                raise
            raise RedisConnectionError("Error writing to Redis: the connection had closed") from exc


class SteadyConnection(ClosedTransportIsConnectionLost, Connection):
    pass


class SteadySSLConnection(ClosedTransportIsConnectionLost, SSLConnection):
    pass


class SteadyUnixConnection(ClosedTransportIsConnectionLost, UnixDomainSocketConnection):
    pass


STEADY_CONNECTIONS: dict[type[AbstractConnection], type[AbstractConnection]] = {
    Connection: SteadyConnection, SSLConnection: SteadySSLConnection, UnixDomainSocketConnection: SteadyUnixConnection}


class MasterConnection(ClosedTransportIsConnectionLost, SentinelManagedConnection):
    """A connection to the master that asks the Sentinels again before every attempt to connect.

    redis-py's own asks once, then retries that one address with the connection's retry policy: a client
    that asked while the old master was down (Sentinel still names it until the failover) keeps knocking on
    it, and when the old master is restarted it gets in, before Sentinel has turned it into a replica (about
    ten seconds). That client then writes to a stale master whose writes the resync throws away, while the
    others write to the new one: jobs run twice or read as expired. Here each attempt is a single try at
    the address Sentinel gives now, and the retry is the outer loop around both.
    """

    async def connect_to(self, address: Any) -> None:
        retry, self.retry = self.retry, Retry(NoBackoff(), 0)
        try:
            await super().connect_to(address)
        finally:
            self.retry = retry


class MasterConnectionTLS(MasterConnection, SSLConnection):
    pass


class RetryWithin(Retry):
    """redis-py's Retry bounded by time, not count: keep retrying for ``seconds`` after the first failure.

    A count means nothing across a failover (its length is the Sentinels' ``down-after-milliseconds`` plus an
    election); a deadline is what a caller can afford. Pauses grow from 0.1 s to 1 s.
    """

    __slots__ = ("_seconds",)

    def __init__(self, seconds: float, errors: tuple[type[Exception], ...]) -> None:
        super().__init__(ExponentialBackoff(cap=1.0, base=0.05), -1, errors)  # type: ignore[arg-type]
        self._seconds = seconds

    async def call_with_retry(self, do: Callable[[], Awaitable[T]], fail: Callable[[RedisError], Any]) -> T:
        self._backoff.reset()
        failures = 0
        deadline: float | None = None
        while True:
            try:
                return await do()
            except self._supported_errors as error:
                failures += 1
                await fail(error)
                now = time.monotonic()
                deadline = now + self._seconds if deadline is None else deadline
                pause = self._backoff.compute(failures)
                if now + pause > deadline:
                    raise error
                await asyncio.sleep(pause)


def parse(url: str) -> RedisTarget:
    """The target ``url`` names, or RedisUrlError with a one-line reason (which never quotes a password)."""
    scheme, separator, rest = url.strip().partition("://")
    scheme = scheme.lower()
    if not separator or (scheme not in PLAIN_SCHEMES and scheme not in SENTINEL_SCHEMES):
        shown = f"starts with '{scheme}://'" if separator else "has no scheme"
        raise RedisUrlError(f"a Redis URL starts with redis://, rediss://, unix://, redis+sentinel:// or "
                            f"rediss+sentinel:// and this one {shown}; e.g. {PLAIN_EXAMPLE} or {EXAMPLE}")
    if scheme in SENTINEL_SCHEMES:
        return _sentinel_target(rest, tls=SENTINEL_SCHEMES[scheme])
    return _plain_target(url.strip(), scheme)


def _plain_target(url: str, scheme: str) -> RedisTarget:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    if scheme == "unix":
        if not parts.path:
            raise RedisUrlError("a unix:// Redis URL needs the socket's path, e.g. unix:///run/redis/redis.sock?db=0")
        db = _db(query["db"][0] if "db" in query else "0")
    else:
        if not parts.hostname:
            raise RedisUrlError(f"a {scheme}:// Redis URL needs a host, e.g. {PLAIN_EXAMPLE}")
        _port(_port_text(parts.netloc.rpartition("@")[2]), parts.hostname, default=6379)
        path = parts.path.strip("/")
        db = _db(query["db"][0] if "db" in query else path or "0")
    password = unquote(parts.password) if parts.password else query.get("password", [None])[0]
    return RedisTarget(url=url, db=db, username=unquote(parts.username) if parts.username else None,
                       password=password or None, tls=scheme == "rediss")


def _sentinel_target(rest: str, *, tls: bool) -> RedisTarget:
    rest, _, query_text = rest.partition("?")
    location, _, path = rest.partition("/")
    userinfo, _, host_list = location.rpartition("@")
    user, _, password = userinfo.partition(":")
    sentinels = tuple(_sentinel_host(entry) for entry in host_list.split(",")) if host_list.strip() else ()
    if not sentinels:
        raise RedisUrlError(f"a Sentinel URL lists the Sentinels' host:port before the master's name: "
                            f"{SENTINEL_FORM}, e.g. {EXAMPLE}")
    segments = path.split("/") if path else []
    if not segments or not segments[0]:
        raise RedisUrlError(f"a Sentinel URL names the master the Sentinels monitor after the hosts: "
                            f"{SENTINEL_FORM}, e.g. {EXAMPLE}")
    if len(segments) > 2 or (len(segments) == 2 and not segments[1]):
        raise RedisUrlError(f"a Sentinel URL ends with /MASTER or /MASTER/DB, not more: {SENTINEL_FORM}, "
                            f"e.g. {EXAMPLE}")
    query = parse_qs(query_text, keep_blank_values=True)
    unknown = sorted(set(query) - set(SENTINEL_PARAMETERS))
    if unknown:
        raise RedisUrlError(f"a Sentinel URL takes only {' and '.join(SENTINEL_PARAMETERS)} as parameters, "
                            f"not '{unknown[0]}'; e.g. {EXAMPLE}?sentinel_password=SENTINEL-PASSWORD")
    return RedisTarget(
        url="", sentinels=sentinels, master=unquote(segments[0]),
        db=_db(segments[1] if len(segments) == 2 else "0"),
        username=unquote(user) or None, password=unquote(password) or None,
        sentinel_username=query.get("sentinel_username", [""])[0] or None,
        sentinel_password=query.get("sentinel_password", [""])[0] or None, tls=tls)


def _sentinel_host(entry: str) -> tuple[str, int]:
    entry = entry.strip()
    if entry.startswith("["):  # [IPv6]:port
        host, _, after = entry[1:].partition("]")
        port_text = after[1:] if after.startswith(":") else after
    else:
        host, _, port_text = entry.partition(":")
    if not host:
        raise RedisUrlError(f"a Sentinel URL has an empty host in its list of Sentinels; separate "
                            f"HOST:PORT entries by single commas, e.g. {EXAMPLE}")
    return host, _port(port_text, host, default=SENTINEL_PORT)


def _port_text(host_port: str) -> str:
    if host_port.startswith("["):
        return host_port.partition("]")[2].lstrip(":")
    return host_port.partition(":")[2]


def _port(text: str, host: str, *, default: int) -> int:
    if not text:
        return default
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise RedisUrlError(f"port '{text}' of host '{host}' is not a number from 1 to 65535, "
                            f"e.g. {PLAIN_EXAMPLE} or {EXAMPLE}")
    return int(text)


def _db(text: str) -> int:
    if not text.isdigit():
        raise RedisUrlError(f"database '{text}' is not a number: Redis databases are numbered from 0, "
                            f"e.g. {PLAIN_EXAMPLE} or {EXAMPLE}")
    return int(text)
