"""Every text Mull sends to GitHub passes the redactor, at the one place all of it goes through: the transport.

Comments, pull request bodies, the dashboard and review comments are built in many modules from text Mull
does not control (agent summaries, model errors, exception messages). Redacting at each call site would be a
rule every new call site must remember; redacting the JSON body of every write request the GitHub client
makes cannot be forgotten. Only request bodies are touched, never headers: the Authorization header is the
one place a token belongs.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from bot.redaction import Redactor
from bot.tls_context import client_context

_WRITES = frozenset({"POST", "PATCH", "PUT"})


class RedactingTransport(httpx.AsyncBaseTransport):
    """Wraps a transport; JSON bodies of write requests have every string in them redacted."""

    def __init__(self, redactor: Redactor, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self._redactor = redactor
        self._inner = inner or httpx.AsyncHTTPTransport(verify=client_context())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method in _WRITES and request.headers.get("content-type", "").startswith("application/json"):
            request = self._redacted(request)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Nothing: githubkit hands this one transport to every client of the App (``with_auth`` copies its
        config), and each ``async with`` of a client closes its transport. Closing the shared pool there
        would break every other client's next request; the pool lives as long as the process."""

    def _redacted(self, request: httpx.Request) -> httpx.Request:
        raw = request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            return request
        clean = json.dumps(redact_json(body, self._redactor), ensure_ascii=False).encode()
        if clean == raw:
            return request
        headers = httpx.Headers(request.headers)
        headers["content-length"] = str(len(clean))
        return httpx.Request(request.method, request.url, headers=headers, content=clean,
                             extensions=request.extensions)


def redact_json(value: Any, redactor: Redactor) -> Any:
    """A JSON-like value with every string in it (keys too) redacted."""
    if isinstance(value, str):
        return redactor.text(value)
    if isinstance(value, dict):
        return {redactor.text(k): redact_json(v, redactor) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_json(v, redactor) for v in value]
    return value
