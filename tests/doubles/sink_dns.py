"""A resolver for sink tests: names map to fixed addresses, and a request's URL names the address it was sent to."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

import pytest

from worker.views import sink_address

PUBLIC = {"hooks.slack.example": "93.184.216.34", "receiver.example": "151.101.1.69",
          "hooks.slack.test": "93.184.216.34", "sink.test": "151.101.1.69"}


def resolver(addresses: Mapping[str, str]) -> sink_address.Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        if host not in addresses:
            raise OSError(f"{host}: name does not resolve")
        return [addresses[host]]
    return resolve


def use(monkeypatch: pytest.MonkeyPatch, addresses: Mapping[str, str] = PUBLIC) -> None:
    """Every sink send in this test resolves through ``addresses`` instead of the system's resolver."""
    monkeypatch.setattr(sink_address, "system_resolver", resolver(addresses))


def pinned(url: str, addresses: Mapping[str, str] = PUBLIC) -> str:
    """``url`` as a sink sends it: aimed at the address its host resolves to (the Host header keeps the name)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = parts.netloc.replace(host, addresses[host], 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
