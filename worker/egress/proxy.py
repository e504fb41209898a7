"""Mull's egress proxy: HTTP proxy protocol on a unix socket, connecting only where the run's policy allows.

Sandboxed commands have no network of their own; ``HTTPS_PROXY`` and ``HTTP_PROXY`` lead them here through the
bridge (``worker/agent/bridge.py``). A client asks for ``CONNECT host:port`` (HTTPS: the proxy then only copies
bytes, it never sees inside TLS) or sends ``GET http://host/path`` (plain HTTP: forwarded in origin form, one
request per connection). The proxy resolves the host itself, once, refuses any loopback, private, link-local or
multicast address unless the operator listed that exact host, and connects to exactly the address it checked,
so a DNS answer cannot change between the check and the connection. Every refusal is a 403 whose body names
the host and how to allow it, and is counted per ``host:port`` for the pull request's report.

What asks is hostile: request heads are bounded in size and time, connections in number, and the counts in
how many hosts they remember.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections import Counter
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from bot.egress_hosts import BadHostEntry, normal_host, parse_entry
from worker.egress.policy import OPERATOR_SETTING, EgressPolicy
from worker.views.sink_address import forbidden

Resolver = Callable[[str, int], Awaitable[list[str]]]
HEAD_LIMIT = 16 * 1024  # bytes of a request line and headers
HEAD_SECONDS = 30.0  # to send them
CONNECT_SECONDS = 15.0  # to reach the upstream
MAX_CONNECTIONS = 64  # at once, per run
MAX_HOSTS = 200  # distinct refused host:port counted; the rest under OTHER_HOSTS
OTHER_HOSTS = "other hosts"
_CHUNK = 65536
_HOP_BY_HOP = frozenset({b"host", b"connection", b"keep-alive", b"proxy-connection", b"proxy-authorization",
                         b"proxy-authenticate", b"te", b"trailer", b"upgrade"})


class _Reply(Exception):
    """End this request with an HTTP status and a plain-text body."""

    def __init__(self, status: int, reason: str, body: str) -> None:
        super().__init__(body)
        self.status, self.reason, self.body = status, reason, body


class EgressProxy:
    """One run's proxy: ``serve`` it on a unix socket; ``refused`` counts what it turned away."""

    def __init__(self, policy: EgressPolicy, resolve: Resolver) -> None:
        self.policy = policy
        self.resolve = resolve
        self.refused: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except _Reply as reply:
            await _answer(writer, reply)
        except (ConnectionError, OSError):
            pass  # the client went away
        finally:
            self._tasks.discard(task)
            writer.close()

    async def stop(self) -> None:
        """End every connection still open: the run is over."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await _read_head(reader)  # read before any answer: closing on unread data would reset it
        if len(self._tasks) > MAX_CONNECTIONS:
            raise _Reply(503, "Service Unavailable", f"Mull's egress proxy allows {MAX_CONNECTIONS} connections at "
                                                     "once; close some and retry")
        line, _, rest = head.partition(b"\r\n")
        parts = line.split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1.") or not parts[0].isalpha() \
                or not all(33 <= byte < 127 for byte in line.replace(b" ", b"!")):
            raise _Reply(400, "Bad Request", "not an HTTP/1.x request line (METHOD TARGET HTTP/1.1)")
        method, target, version = (part.decode("ascii", "replace") for part in parts)
        if method == "CONNECT":
            host, port = _authority(target)
            upstream_reader, upstream = await self._open(host, port)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            host, port, path = _absolute(target)
            upstream_reader, upstream = await self._open(host, port)
            authority = f"[{host}]" if ":" in host else host
            authority += "" if port == 80 else f":{port}"
            upstream.write(f"{method} {path} {version}\r\nHost: {authority}\r\n".encode("ascii")
                           + _forwarded_headers(rest))
        try:
            await asyncio.gather(_pump(reader, upstream), _pump(upstream_reader, writer))
        finally:
            upstream.close()

    async def _open(self, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to ``host:port`` at an address the policy allows, or a _Reply saying why not."""
        why = self.policy.refusal(host, port)
        if why is not None:
            raise self._refuse(host, port, why)
        try:
            literal = ipaddress.ip_address(host)
            addresses = [literal]
        except ValueError:
            try:
                answers = await asyncio.wait_for(self.resolve(host, port), CONNECT_SECONDS)
            except (OSError, TimeoutError):
                raise _Reply(502, "Bad Gateway", f"Mull's egress proxy cannot resolve {host}") from None
            addresses = [ipaddress.ip_address(answer.split("%", 1)[0]) for answer in answers]
        if not addresses:
            raise _Reply(502, "Bad Gateway", f"Mull's egress proxy cannot resolve {host}")
        if not self.policy.may_be_private(host, port):
            for address in addresses:
                reason = forbidden(address)
                if reason:
                    raise self._refuse(host, port, (
                        f"{host} resolves to {address}, a {reason} address; the sandbox reaches such addresses only "
                        f"for a host the operator lists exactly (not through a wildcard) in {OPERATOR_SETTING}"))
        failure: OSError | TimeoutError | None = None
        for address in addresses:
            try:
                return await asyncio.wait_for(asyncio.open_connection(str(address), port, limit=_CHUNK),
                                              CONNECT_SECONDS)
            except (OSError, TimeoutError) as exc:
                failure = exc
        raise _Reply(502, "Bad Gateway", f"Mull's egress proxy cannot connect to {host}:{port} ({failure})")

    def _refuse(self, host: str, port: int, why: str) -> _Reply:
        key = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if key not in self.refused and len(self.refused) >= MAX_HOSTS:
            key = OTHER_HOSTS
        self.refused[key] += 1
        return _Reply(403, "Forbidden", f"Mull's sandbox refused a connection to {key}: {why}")


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    try:
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_SECONDS)
    except asyncio.LimitOverrunError:
        raise _Reply(431, "Request Header Fields Too Large",
                     f"the request head is over {HEAD_LIMIT} bytes") from None
    except TimeoutError:
        raise _Reply(408, "Request Timeout", f"no complete request head within {HEAD_SECONDS:g} s") from None
    except asyncio.IncompleteReadError:
        raise ConnectionResetError from None


def _host(host: str | None) -> str:
    """The request's host, checked as an allow-list entry would be: a name or an address, nothing else."""
    if not host:
        raise _Reply(400, "Bad Request", "the request names no host")
    host = normal_host(host)
    try:
        rule = parse_entry(f"[{host}]" if ":" in host else host)
    except BadHostEntry:
        rule = None
    if rule is None or rule.wildcard:
        raise _Reply(400, "Bad Request", "the request's host is not a host name or an IP address")
    return rule.host


def _authority(target: str) -> tuple[str, int]:
    """``host:port`` of a CONNECT."""
    try:
        parts = urlsplit("//" + target)
        port = parts.port
    except ValueError:
        raise _Reply(400, "Bad Request", "CONNECT needs host:port with a port from 1 to 65535") from None
    if port is None or not 1 <= port <= 65535 or parts.path or parts.query or parts.username is not None:
        raise _Reply(400, "Bad Request", "CONNECT needs host:port with a port from 1 to 65535")
    return _host(parts.hostname), port


def _absolute(target: str) -> tuple[str, int, str]:
    """Host, port and origin-form path of a plain-HTTP proxy request (``GET http://host:port/path``)."""
    try:
        parts = urlsplit(target)
        port = parts.port or 80
    except ValueError:
        raise _Reply(400, "Bad Request", "the request's URL has a bad port") from None
    if parts.scheme.lower() == "https":
        raise _Reply(400, "Bad Request", "for https:// URLs, use CONNECT (set HTTPS_PROXY)")
    if parts.scheme.lower() != "http":
        raise _Reply(400, "Bad Request", "this is Mull's egress proxy: send an absolute http:// URL, or CONNECT "
                                         "host:port")
    if parts.username is not None or not 1 <= port <= 65535:
        raise _Reply(400, "Bad Request", "the request's URL has credentials or a bad port")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _host(parts.hostname), port, path


def _forwarded_headers(rest: bytes) -> bytes:
    """The client's headers without the proxy's and hop-by-hop ones (and its Host: the URL's is sent), closing
    after one response."""
    kept = [line for line in rest.split(b"\r\n")
            if line and line.split(b":", 1)[0].strip().lower() not in _HOP_BY_HOP]
    return b"".join(line + b"\r\n" for line in kept) + b"Connection: close\r\n\r\n"


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy until ``source`` ends, then end ``sink``'s sending side so the other end sees EOF too."""
    with contextlib.suppress(ConnectionError, OSError):
        while data := await source.read(_CHUNK):
            sink.write(data)
            await sink.drain()
    with contextlib.suppress(ConnectionError, OSError, RuntimeError):
        if sink.can_write_eof():
            sink.write_eof()


async def _answer(writer: asyncio.StreamWriter, reply: _Reply) -> None:
    body = (reply.body.rstrip() + "\n").encode("utf-8", "replace")
    writer.write(f"HTTP/1.1 {reply.status} {reply.reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                 f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                 + body)
    with contextlib.suppress(ConnectionError, OSError):
        await writer.drain()
