"""Reaching the gateway from inside the worker process, over the same unix socket the sandbox uses.

The builtin agent runs in the worker, not the sandbox, but it should take the same path as every other
agent: the run's token instead of the key, the same budgets, the same transcript. An httpx client with a
unix-socket transport gives it that; the host name in the URL is never resolved.
"""

from __future__ import annotations

from pathlib import Path

import httpx

BASE_URL = "http://mull-gateway/v1"  # the host is a placeholder: the transport always dials the socket


def gateway_client(socket_path: Path, token: str, timeout: float = 300.0) -> httpx.AsyncClient:
    """For OpenAI's SDK: ``AsyncOpenAI(base_url=BASE_URL, api_key=token, http_client=gateway_client(...))``."""
    transport = httpx.AsyncHTTPTransport(uds=str(socket_path))
    return httpx.AsyncClient(transport=transport, base_url=BASE_URL, timeout=httpx.Timeout(timeout, connect=10.0),
                             headers={"authorization": f"Bearer {token}"})
