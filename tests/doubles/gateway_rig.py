"""A running ``ModelGateway`` for tests, and clients that reach it over its unix socket the way an agent does.

The socket lives under a short temporary directory of its own: pytest's ``tmp_path`` can exceed the 107
bytes a unix socket path may have.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from worker.agent.base import ModelAccess
from worker.gateway import ModelGateway

UPSTREAM_KEY = "sk-upstream-real-key-4f9a1c77d2"  # the key only the worker may hold
CHAT = "/v1/chat/completions"


@asynccontextmanager
async def running_gateway(upstream_url: str, *, api_key: str | None = UPSTREAM_KEY, redact: Sequence[str] = (),
                          **options: Any) -> AsyncIterator[ModelGateway]:
    root = Path(tempfile.mkdtemp(prefix="gw-"))
    try:
        async with ModelGateway(upstream_url, api_key, root / "sock" / "model.sock", root / "transcripts",
                                redact, **options) as gateway:
            yield gateway
    finally:
        shutil.rmtree(root, ignore_errors=True)


def agent_client(gateway: ModelGateway, token: str | None = None, **headers: str) -> httpx.AsyncClient:
    """A client as an agent has one: the socket, and whatever credentials (or none) it chooses to send."""
    sent = {"authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(gateway.socket_path)),
                             base_url="http://gateway", headers={**sent, **headers}, timeout=10)


def chat(key: str, **fields: Any) -> dict[str, Any]:
    """A chat completions body whose conversation the scripted model matches by ``key``."""
    return {"model": "whatever-the-agent-wants", "messages": [{"role": "user", "content": f"task {key}"}], **fields}


@asynccontextmanager
async def model_access(upstream_url: str, model: str = "scripted", steps: int = 40, tokens: int = 400_000, *,
                       api_key: str | None = UPSTREAM_KEY, run_id: str = "test-run") -> AsyncIterator[ModelAccess]:
    """What an agent or critic is handed for one run: a live gateway run in front of ``upstream_url``."""
    async with running_gateway(upstream_url, api_key=api_key, shutdown_seconds=0) as gateway:
        async with gateway.run(run_id, model, steps, tokens) as grant:
            yield ModelAccess(gateway.socket_path, grant)


async def raw_connection(gateway: ModelGateway) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A bare connection to the gateway's socket, for a client that does not behave like an HTTP library."""
    return await asyncio.open_unix_connection(str(gateway.socket_path))


def request_head(token: str, length: int, path: str = CHAT) -> bytes:
    """A POST's request line and headers, announcing ``length`` body bytes (which the caller may not send)."""
    return (f"POST {path} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n").encode()
