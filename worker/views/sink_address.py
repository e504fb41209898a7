"""Which addresses a sink may reach: public ones, unless the operator lists a host in ``MULL_SINK_ALLOW_HOSTS``.

Whoever edits ``.github/mull.yml`` picks a sink's URL, and the worker posts to it from inside the deployment's
network. Without this check a repository writer could aim the worker at the cloud metadata endpoint
(169.254.169.254), at Redis on loopback, or at an intranet service, and read the answers back through the
sink's error logs or side effects. So every send resolves the host once, refuses any address that is not
public, and connects to exactly the address it checked (see ``pin``): a DNS answer that changes between the
check and the connection (DNS rebinding) cannot sneak a private address in.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
ALLOW_SETTING = "MULL_SINK_ALLOW_HOSTS"
_CGNAT = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT: not is_private in every Python


class SinkRefused(Exception):
    """The sink's host is, or resolves to, an address the worker must not post to; the message says why."""


@dataclass(frozen=True)
class SinkPolicy:
    """The operator's exceptions: host names, IP addresses or networks (CIDR) sinks may reach though private."""

    allowed: tuple[str, ...] = ()

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in {entry.lower().rstrip(".") for entry in self.allowed}

    def allows_address(self, address: IPAddress) -> bool:
        for entry in self.allowed:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue  # a host name, matched by allows_host
        return False


PUBLIC_ONLY = SinkPolicy()  # no exceptions: the default


def forbidden(address: IPAddress) -> str | None:
    """Why ``address`` is not public (``loopback``, ``private``, …), or None when a sink may reach it."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    checks = (("unspecified", address.is_unspecified), ("loopback", address.is_loopback),
              ("link-local", address.is_link_local), ("multicast", address.is_multicast),
              ("carrier-grade NAT", isinstance(address, ipaddress.IPv4Address) and address in _CGNAT),
              ("private", address.is_private or address.is_reserved or not address.is_global))
    return next((name for name, hit in checks if hit), None)


def literal_refusal(url: str, policy: SinkPolicy) -> str | None:
    """At config validation: why ``url`` names a non-public host literally (an IP or localhost), else None.

    Host names are resolved only when sending: what they resolve to may change after the file is read.
    """
    host = httpx.URL(url).raw_host.decode("ascii").lower().rstrip(".")
    if policy.allows_host(host):
        return None
    if host == "localhost" or host.endswith(".localhost"):
        return f"{host} is this machine: {_hint()}"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    reason = forbidden(address)
    if reason is None or policy.allows_address(address):
        return None
    return f"{host} is a {reason} address: {_hint()}"


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host`` (one lookup, as the connection would make)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True)
class Pinned:
    """A request aimed at a checked address: ``url`` names the IP, while ``Host`` and TLS keep the host name."""

    url: str
    headers: dict[str, str]
    extensions: dict[str, str]


async def pin(url: str, policy: SinkPolicy, resolve: Resolver | None = None) -> Pinned:
    """Resolve ``url``'s host once, refuse it unless every address is public or allowed, and aim at the first.

    The URL is rewritten to the checked IP so httpx connects there without a lookup of its own; the ``Host``
    header and the TLS server name (httpcore's ``sni_hostname`` extension, which is also the name the
    certificate is verified against) stay the original host, so the receiver and its certificate see an
    ordinary request. ``Connection: close`` keeps a pooled connection to this IP from carrying a request for
    another host name later. ``resolve`` defaults to ``system_resolver``, looked up when called so a test can
    swap it. Raises SinkRefused, or OSError when the name does not resolve.
    """
    parsed = httpx.URL(url)
    host = parsed.raw_host.decode("ascii")  # IDNA-encoded: what DNS and TLS see
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        _check(host, [literal], policy)
        return Pinned(url, {}, {})
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        if policy.allows_host(host):
            return Pinned(url, {}, {})
        raise SinkRefused(f"{host} is this machine: {_hint()}")
    answers = await (resolve or system_resolver)(host, parsed.port or 443)
    addresses = [ipaddress.ip_address(answer.split("%", 1)[0]) for answer in answers]  # no IPv6 zone ids
    if not addresses:
        raise OSError(f"{host} resolves to no address")
    if not policy.allows_host(host):
        _check(host, addresses, policy)
    target = parsed.copy_with(host=str(addresses[0]))
    netloc = parsed.netloc.decode("ascii")
    return Pinned(str(target), {"Host": netloc, "Connection": "close"}, {"sni_hostname": host})


def _check(host: str, addresses: list[IPAddress], policy: SinkPolicy) -> None:
    for address in addresses:
        reason = forbidden(address)
        if reason and not policy.allows_address(address):
            raise SinkRefused(f"{host} resolves to {address}, a {reason} address: {_hint()}")


def _hint() -> str:
    return (f"sinks only post to public addresses; to reach this one, the operator adds the host or its network "
            f"to {ALLOW_SETTING}")
