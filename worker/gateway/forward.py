"""Forwarding one model request upstream: the run's model, the real key, and nothing of the agent's own.

The agent chooses the body's messages and little else. The model is the run's; the upstream sees the real
API key and only an allow-list of the agent's headers (never its token, cookies or hop-by-hop headers);
whatever comes back has every known secret scrubbed before it reaches the sandbox. A streamed answer is
relayed event by event as it arrives, so time to first token is the upstream's, while the gateway reads
each event for usage and the transcript. A step is counted when the request is forwarded, tokens when its
answer ends; a request that finds a budget already spent is refused without reaching the upstream.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from starlette.responses import Response, StreamingResponse

from worker.gateway import errors
from worker.gateway.dialect import Dialect, StreamReader, Tokens, estimate
from worker.gateway.runs import Run
from worker.gateway.sse import EventSplitter, event_data

PASSED_REQUEST_HEADERS = frozenset({"accept", "user-agent", "anthropic-version", "anthropic-beta", "openai-beta"})
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


@dataclass(frozen=True)
class Exchange:
    """One request on its way through: what its transcript record and log line need when it ends."""

    run: Run
    dialect: Dialect
    route: str
    body: dict[str, Any]
    started: float
    at: str


class Forwarder:
    def __init__(self, upstream: Upstream, log: Any) -> None:
        self.upstream = upstream
        self.log = log

    async def __call__(self, run: Run, dialect: Dialect, route: str, body: dict[str, Any],
                       headers: Mapping[str, str]) -> Response:
        exchange = Exchange(run, dialect, route, body, time.monotonic(), datetime.now(UTC).isoformat())
        spent = run.grant.meter.spent()
        if spent is not None:
            run.trip(spent)
            self._finish(exchange, 403, None, None, refused=spent)
            return errors.budget_spent(spent)
        run.grant.meter.requests += 1
        upstream_body, drop_usage = dialect.prepare(body, run.grant.model)
        request = self.upstream.http.build_request(
            "POST", self.upstream.base_url + dialect.upstream_path, content=orjson.dumps(upstream_body),
            headers=self._request_headers(dialect, headers))
        try:
            response = await self.upstream.http.send(request, stream=True)
        except httpx.HTTPError as exc:
            return self._unreachable(exchange, exc)
        if response.status_code == 200 and response.headers.get("content-type", "").startswith("text/event-stream"):
            relay = self._relay(exchange, response, dialect.stream_reader(drop_usage))
            return StreamingResponse(relay, 200, headers=self._response_headers(run, response))
        return await self._whole(exchange, response)

    def _request_headers(self, dialect: Dialect, incoming: Mapping[str, str]) -> dict[str, str]:
        headers = dict(dialect.default_headers)
        headers.update((k, v) for k, v in incoming.items() if k.lower() in PASSED_REQUEST_HEADERS)
        headers.update(dialect.auth_headers(self.upstream.api_key))
        headers["content-type"] = "application/json"
        return headers

    @staticmethod
    def _response_headers(run: Run, response: httpx.Response) -> dict[str, str]:
        return {k: run.scrubber.text(v) for k, v in ((k.lower(), v) for k, v in response.headers.items())
                if k in PASSED_RESPONSE_HEADERS or k.startswith(PASSED_RESPONSE_PREFIXES)}

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
        if response.is_success:
            dialect = exchange.dialect
            used = dialect.usage(answer) or Tokens(estimate(dialect.prompt_chars(exchange.body)),
                                                   estimate(dialect.reply_chars(answer)), estimated=True)
        self._finish(exchange, response.status_code, answer, used)
        return Response(exchange.run.scrubber.data(raw), response.status_code,
                        headers=self._response_headers(exchange.run, response))

    async def _relay(self, exchange: Exchange, response: httpx.Response, reader: StreamReader) -> AsyncIterator[bytes]:
        """The upstream's events as they complete, scrubbed, minus any the agent did not ask for."""
        splitter = EventSplitter()
        scrub = exchange.run.scrubber.data
        error = None
        try:
            async for chunk in response.aiter_bytes():
                events = [scrub(e) for e in splitter.feed(chunk) if not reader.read(event_data(e))]
                if events:
                    yield b"".join(events)
            rest = splitter.rest()
            if rest:
                reader.read(event_data(rest))
                yield scrub(rest)
        except httpx.HTTPError as exc:
            error = f"the model endpoint at {self.upstream.host} broke off the stream ({type(exc).__name__})"
        finally:
            await response.aclose()
            used = reader.usage() or Tokens(estimate(exchange.dialect.prompt_chars(exchange.body)),
                                            estimate(reader.chars()), estimated=True)
            self._finish(exchange, 200, reader.reply(), used, stream=True, error=error)

    def _unreachable(self, exchange: Exchange, exc: httpx.HTTPError) -> Response:
        if isinstance(exc, httpx.TimeoutException):
            status, message = 504, (f"the model endpoint at {self.upstream.host} did not answer in time "
                                    f"({type(exc).__name__}); try again, or ask for a shorter answer")
        else:
            status, message = 502, (f"the model endpoint at {self.upstream.host} could not be reached "
                                    f"({type(exc).__name__}): check Mull's model base URL and that the model "
                                    "server is running")
        self._finish(exchange, status, None, None, error=message)
        return errors.refusal(status, "upstream_error", message)

    def _finish(self, exchange: Exchange, status: int, answer: object, used: Tokens | None, *,
                stream: bool = False, refused: str | None = None, error: str | None = None) -> None:
        run = exchange.run
        if used is not None:
            run.grant.meter.add(used)
        ms = round((time.monotonic() - exchange.started) * 1000, 1)
        usage = None if used is None else {"input": used.input, "output": used.output, "estimated": used.estimated}
        record: dict[str, object] = {
            "time": exchange.at, "route": exchange.route, "protocol": exchange.dialect.name, "status": status,
            "ms": ms, "stream": stream, "request": exchange.dialect.prompt(exchange.body), "response": answer,
            "usage": usage}
        extra = {k: v for k, v in (("refused", refused), ("error", error)) if v is not None}
        run.transcript.write({**record, **extra})
        self.log.info("model request", run=run.grant.run_id, route=exchange.route, status=status, ms=ms,
                      input_tokens=used.input if used else 0, output_tokens=used.output if used else 0,
                      estimated=bool(used and used.estimated), **extra)
