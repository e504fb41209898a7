"""Which hosts a sandboxed command may reach through Mull's egress proxy: the allow-list and its entries.

One grammar serves the operator's ``MULL_SANDBOX_ALLOW_HOSTS``, a repository's ``network.allow`` and the proxy
that enforces them, so what the settings accept is exactly what the proxy matches. An entry is a host name
(``pypi.org``), a wildcard over its subdomains (``*.pythonhosted.org``: any name under it, not the name itself)
or an IP address (``10.1.2.3``, ``[fd00::1]``), optionally with ``:port``; without one it allows ports 443 and
80. Only an exact entry of the operator's lets a host resolve to a loopback, private, link-local or multicast
address (the proxy's check): a wildcard, or a repository's entry alone, never does.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_PORTS = (443, 80)
# The common package registries (PyPI, npm, crates.io, the Go module proxy, RubyGems, Maven Central) and
# GitHub's hosts for archives and release downloads: what a repository's setup usually fetches.
DEFAULT_ALLOW = ",".join((
    "pypi.org", "files.pythonhosted.org",
    "registry.npmjs.org", "registry.yarnpkg.com",
    "crates.io", "static.crates.io", "index.crates.io",
    "proxy.golang.org", "sum.golang.org",
    "rubygems.org", "index.rubygems.org",
    "repo.maven.apache.org", "repo1.maven.org",
    "github.com", "codeload.github.com", "objects.githubusercontent.com", "release-assets.githubusercontent.com",
))
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_EXAMPLE = "e.g. pypi.org, *.pythonhosted.org or registry.internal:8443"


class BadHostEntry(ValueError):
    """An allow-list entry that is not a host, wildcard or address with an optional port; says how to write it.

    The message never repeats the entry (a URL pasted by mistake may carry a password): it reads after the
    entry's position, "entry 2 is a URL ..."."""


@dataclass(frozen=True)
class HostRule:
    """One entry: ``host`` (lowercase, no trailing dot; an IP address as written without brackets) or, when
    ``wildcard``, the suffix whose subdomains match; the ports it allows."""

    host: str
    wildcard: bool
    ports: tuple[int, ...]
    port_given: bool  # written with ``:port`` (kept for showing the entry back as written)

    def matches(self, host: str, port: int) -> bool:
        if port not in self.ports:
            return False
        return host.endswith("." + self.host) if self.wildcard else host == self.host

    def covers(self, other: HostRule) -> bool:
        """Whether every (host, port) ``other`` allows, this allows too: how a repository may only narrow."""
        if not set(other.ports) <= set(self.ports):
            return False
        if not self.wildcard:
            return not other.wildcard and other.host == self.host
        return other.host.endswith("." + self.host)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        shown = f"*.{host}" if self.wildcard else host
        return f"{shown}:{self.ports[0]}" if self.port_given else shown


def parse_entry(text: str) -> HostRule:
    """One entry as a rule, or BadHostEntry saying what is wrong with it and how to write it."""
    entry = text.strip()
    if not entry:
        raise BadHostEntry("is empty: separate host names by single commas")
    if "://" in entry or "/" in entry:
        raise BadHostEntry(f"is a URL or a path, not a host: write the host name alone, {_EXAMPLE}")
    if not entry.isascii() or not entry.isprintable() or " " in entry:
        raise BadHostEntry("is not a host name: write it in ASCII (an international name in its xn-- "
                           f"form), {_EXAMPLE}")
    host, port_text = _split_port(entry)
    ports: tuple[int, ...] = DEFAULT_PORTS
    if port_text is not None:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise BadHostEntry("has a port that is not a number from 1 to 65535")
        ports = (int(port_text),)
    host = host.lower().rstrip(".")
    wildcard = host.startswith("*.")
    if wildcard:
        host = host[2:]
    address = _address(host)
    if address is not None:
        if wildcard:
            raise BadHostEntry("puts a wildcard before an IP address; list the address itself")
        return HostRule(str(address), False, ports, port_text is not None)
    if "*" in host:
        raise BadHostEntry("has a '*' that is not a leading '*.': a wildcard covers the subdomains of a "
                           "name, e.g. *.pythonhosted.org")
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise BadHostEntry("is not a host name (letters, digits and hyphens, labels separated by "
                           f"dots), {_EXAMPLE}")
    if wildcard and len(labels) < 2:
        raise BadHostEntry("covers a whole top-level domain; name a domain under it, e.g. "
                           "*.pythonhosted.org")
    return HostRule(host, wildcard, ports, port_text is not None)


def parse_list(entries: Iterable[str]) -> tuple[HostRule, ...]:
    """Every entry parsed; BadHostEntry for the first bad one, saying which (counted from 1)."""
    rules = []
    for number, entry in enumerate(entries, start=1):
        try:
            rules.append(parse_entry(entry))
        except BadHostEntry as exc:
            raise BadHostEntry(f"entry {number} {exc}") from None
    return tuple(rules)


def split(value: str) -> list[str]:
    """A comma-separated setting as its entries (blank ones dropped: a trailing comma is harmless)."""
    return [entry.strip() for entry in value.split(",") if entry.strip()]


def normal_host(host: str) -> str:
    """A request's host as rules hold it: lowercase, no trailing dot, an IP address without brackets."""
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    address = _address(host)
    return str(address) if address is not None else host


def _split_port(entry: str) -> tuple[str, str | None]:
    if entry.startswith("["):
        close = entry.find("]")
        if close < 0:
            raise BadHostEntry("opens '[' for an IPv6 address but never closes it")
        rest = entry[close + 1:]
        if rest and not rest.startswith(":"):
            raise BadHostEntry("has text after its IPv6 address; write [ADDRESS]:PORT")
        return entry[1:close], rest[1:] if rest else None
    if entry.count(":") > 1:
        raise BadHostEntry("looks like an IPv6 address: write it in brackets, e.g. [fd00::1]:8443")
    host, colon, port = entry.partition(":")
    return host, port if colon else None


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def uncovered(operator: Iterable[HostRule], wanted: Iterable[HostRule]) -> list[HostRule]:
    """The entries of ``wanted`` (a repository's) that no entry of the operator's allows whole."""
    granted = tuple(operator)
    return [rule for rule in wanted if not any(given.covers(rule) for given in granted)]
