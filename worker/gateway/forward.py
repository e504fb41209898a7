"""Forwarding one model request upstream: the run's model, the real key, and nothing of the agent's own.

The agent chooses the body's messages and little else. The model is the run's; the body is rebuilt from an
allow-list (``allowlist`` and each protocol's module) with the answer's length capped at what the run's
token budget has left; the upstream sees the real API key and only an allow-list of the agent's headers
(never its token, cookies, hop-by-hop headers or betas that give the model tools). Whatever comes back has
every known secret scrubbed before it reaches the sandbox. A streamed answer is relayed event by event as it
arrives, so time to first token is the upstream's, while the gateway reads each event for usage and the
transcript; its tokens are counted when it ends, however it ends (the agent may stop reading mid-stream).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from worker.gateway import errors
from worker.gateway.allowlist import safe_betas
from worker.gateway.body import large
from worker.gateway.dialect import Dialect, StreamReader, Tokens, estimate
from worker.gateway.exchange import Exchange
from worker.gateway.sse import EventSplitter, event_data

PASSED_REQUEST_HEADERS = frozenset({"accept", "user-agent", "anthropic-version"})
FILTERED_REQUEST_HEADERS = frozenset({"anthropic-beta", "openai-beta"})  # passed in part (betas) or never
PASSED_RESPONSE_HEADERS = frozenset({"content-type", "retry-after", "x-request-id", "request-id"})
PASSED_RESPONSE_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-", "openai-")


@dataclass(frozen=True)
class Upstream:
    base_url: str  # e.g. "https://api.openai.com/v1"; routes are appended
    api_key: str | None
    http: httpx.AsyncClient

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or self.base_url


def request_headers(dialect: Dialect, incoming: Mapping[str, str], api_key: str | None) -> tuple[dict, list[str]]:
    """The headers to send upstream, and the names of the agent's headers (or betas) left out."""
    headers = dict(dialect.default_headers)
    dropped: list[str] = []
    for name, value in incoming.items():
        name = name.lower()
        if name in PASSED_REQUEST_HEADERS:
            headers[name] = value
        elif name == "anthropic-beta":
            kept, refused = safe_betas(value)
            if kept:
                headers[name] = kept
            dropped += [f"anthropic-beta:{beta}" for beta in refused]
        elif name in FILTERED_REQUEST_HEADERS:
            dropped.append(name)
    headers.update(dialect.auth_headers(api_key))
    headers["content-type"] = "application/json"
    return headers, dropped


class Forwarder:
    def __init__(self, upstream: Upstream, log: Any) -> None:
        self.upstream = upstream
        self.log = log

    async def __call__(self, exchange: Exchange, headers: Mapping[str, str]) -> Response:
        """Send ``exchange.body`` upstream (the step is already counted) and relay what comes back."""
        run, dialect = exchange.run, exchange.dialect
        assert exchange.body is not None  # read before forwarding
        arguments = (exchange.body, run.grant.model, run.grant.meter.tokens_left)
        prepared = await asyncio.to_thread(dialect.prepare, *arguments) if large(exchange.size) else \
            dialect.prepare(*arguments)
        sent_headers, dropped_headers = request_headers(dialect, headers, self.upstream.api_key)
        exchange.dropped = prepared.dropped + dropped_headers
        if prepared.refusal is not None:
            exchange.finish(400, error=prepared.refusal)
            return errors.refusal(400, "invalid_request_error", prepared.refusal)
        request = self.upstream.http.build_request(
            "POST", self.upstream.base_url + dialect.upstream_path, content=orjson.dumps(prepared.body),
            headers=sent_headers)
        try:
            response = await self.upstream.http.send(request, stream=True)
        except httpx.HTTPError as exc:
            return self._unreachable(exchange, exc)
        if response.status_code == 200 and response.headers.get("content-type", "").startswith("text/event-stream"):
            return Relay(exchange, response, dialect.stream_reader(prepared.drop_usage), self.upstream.host,
                         _response_headers(exchange, response))
        return await self._whole(exchange, response)

    async def _whole(self, exchange: Exchange, response: httpx.Response) -> Response:
        try:
            raw = await response.aread()
        except httpx.HTTPError as exc:
            return self._unreachable(exchange, exc)
        finally:
            await response.aclose()
        try:
            answer: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            answer = raw.decode(errors="replace")
        used = None
        if response.is_success and exchange.body is not None:
            dialect = exchange.dialect
            used = dialect.usage(answer) or Tokens(estimate(dialect.prompt_chars(exchange.body)),
                                                   estimate(dialect.reply_chars(answer)), estimated=True)
        exchange.finish(response.status_code, answer, used)
        return Response(exchange.run.scrubber.data(raw), response.status_code,
                        headers=_response_headers(exchange, response))

    def _unreachable(self, exchange: Exchange, exc: httpx.HTTPError) -> Response:
        host = self.upstream.host
        if isinstance(exc, httpx.TimeoutException):
            status, message = 504, (f"the model endpoint at {host} did not answer in time "
                                    f"({type(exc).__name__}); try again, or ask for a shorter answer")
        else:
            status, message = 502, (f"the model endpoint at {host} could not be reached "
                                    f"({type(exc).__name__}): check Mull's model base URL and that the model "
                                    "server is running")
        exchange.finish(status, error=message)
        return errors.refusal(status, "upstream_error", message)


def _response_headers(exchange: Exchange, response: httpx.Response) -> dict[str, str]:
    scrub = exchange.run.scrubber.text
    return {k: scrub(v) for k, v in ((k.lower(), v) for k, v in response.headers.items())
            if k in PASSED_RESPONSE_HEADERS or k.startswith(PASSED_RESPONSE_PREFIXES)}


class Relay(StreamingResponse):
    """A streamed answer passed on event by event, scrubbed, minus any event the agent did not ask for; counted
    and recorded when it ends, including when the agent stops reading (then the upstream is closed too)."""

    def __init__(self, exchange: Exchange, upstream: httpx.Response, reader: StreamReader, host: str,
                 headers: dict[str, str]) -> None:
        self.exchange, self.upstream, self.reader, self.host = exchange, upstream, reader, host
        self.events = self._events()
        super().__init__(self.events, 200, headers=headers)

    async def _events(self) -> AsyncGenerator[bytes, None]:
        splitter = EventSplitter()
        scrub, reader = self.exchange.run.scrubber.data, self.reader
        error = "the agent stopped reading before the answer ended"
        try:
            async for chunk in self.upstream.aiter_bytes():
                events = [scrub(e) for e in splitter.feed(chunk) if not reader.read(event_data(e))]
                if events:
                    yield b"".join(events)
            rest = splitter.rest()
            if rest:
                reader.read(event_data(rest))
                yield scrub(rest)
            error = ""
        except httpx.HTTPError as exc:
            error = f"the model endpoint at {self.host} broke off the stream ({type(exc).__name__})"
        finally:
            self._settle(error)  # before any await: a cancelled task may not get past the next one
            await self.upstream.aclose()

    def _settle(self, error: str) -> None:
        exchange = self.exchange
        body = exchange.body or {}
        used = self.reader.usage() or Tokens(estimate(exchange.dialect.prompt_chars(body)),
                                             estimate(self.reader.chars()), estimated=True)
        exchange.finish(200, self.reader.reply(), used, stream=True, error=error or None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._settle("the agent stopped reading before the answer ended")  # a no-op if the stream ended
            await self.events.aclose()
            await self.upstream.aclose()
