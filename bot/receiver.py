"""The webhook receiver: verify, dedupe, filter, store, answer — no GitHub calls, one Redis round trip.

``POST /webhooks/github`` is a plain ASGI callable rather than a Request-based endpoint: it is the hot
path, and reading the body message by message lets it refuse oversized bodies without buffering them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bot import intake, keys, logs, redis_target
from bot.delivery_store import DeliveryStore, NotReplicated
from bot.jobs import QUEUE, Delivery
from bot.metrics import ReceiverMetrics
from bot.session_site import SessionSite, SessionSiteConfig

MAX_BODY = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB
# A request waits this long for Redis to come back (a stale connection after a failover reconnects at once)
# before it answers 503: GitHub gives up on a delivery after 10 s.
KEEP_TRYING_S = 1.0


class WebhookEndpoint:
    """ASGI app for GitHub deliveries."""

    def __init__(self, secret: str, metrics: ReceiverMetrics) -> None:
        self.secret = secret
        self._key = secret.encode()
        self._counters: dict[tuple[str, str], Any] = {}  # labels() takes a lock and builds a key on every call
        self.store: DeliveryStore | None = None  # set by the app's lifespan, on the serving event loop
        self.metrics = metrics
        self.bot_login: str | None = None
        self.log = logs.get("mull.receiver")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            await _reply(send, 405, {"error": "use POST"}, [(b"allow", b"POST")])
            return
        headers = dict(scope["headers"])
        status, payload = await self._handle(headers, receive)
        await _reply(send, status, payload)

    async def _handle(self, headers: dict[bytes, bytes], receive: Receive) -> tuple[int, dict[str, Any]]:
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return self._count("-", "too_large", 413, "body over 25 MB (or a bad Content-Length)")
        body = await _read_body(receive, MAX_BODY)
        if body is None:
            return self._count("-", "too_large", 413, "body over 25 MB")
        signature = headers.get(b"x-hub-signature-256", b"").decode("latin-1")
        if not signature:
            return self._count("-", "unsigned", 401, "missing X-Hub-Signature-256: set a webhook secret on the "
                               "GitHub App and the same value in MULL_WEBHOOK_SECRET")
        # compare_digest() takes str digests only when ASCII: any other byte is a wrong signature, not a crash.
        if not signature.isascii() or not signature.startswith("sha256=") or not hmac.compare_digest(
                hmac.digest(self._key, body, hashlib.sha256).hex(), signature[7:]):
            return self._count("-", "bad_signature", 401, "signature does not match: verify that the webhook "
                               "secret on the GitHub App matches MULL_WEBHOOK_SECRET")
        event = headers.get(b"x-github-event", b"").decode("latin-1")
        guid = headers.get(b"x-github-delivery", b"").decode("latin-1")
        if not event or not guid:
            missing = " and ".join(n for n, v in (("X-GitHub-Event", event), ("X-GitHub-Delivery", guid)) if not v)
            return self._count(event or "-", "bad_request", 400, f"missing {missing} header")
        if not headers.get(b"content-type", b"application/json").startswith(b"application/json"):
            return self._count(event, "bad_request", 400,
                               "payload is not JSON: set the App's webhook content type to application/json")
        if event == "ping":
            return self._count(event, "ping", 200, "pong")
        try:
            verdict = intake.decide(event, body, self.bot_login)
        except intake.MalformedPayload as exc:
            return self._count(event, "bad_request", 400, str(exc))
        if not verdict.store:
            self._counter(event, "ignored").inc()
            return 200, {"ignored": verdict.reason}
        if self.store is None:
            return self._count(event, "unavailable", 503, "receiver is starting; redeliver shortly")
        try:
            stored = await self.store.put(Delivery(guid, event, body, int(time.time() * 1000)))
        except NotReplicated as exc:
            self.log.warning("delivery not confirmed by a replica", delivery=guid, gh_event=event, error=str(exc))
            return self._count(event, "unavailable", 503, "the delivery reached the Redis master but no replica "
                               "confirmed it; redeliver it (a delivery already stored is not run twice)")
        except (RedisError, OSError) as exc:
            self.log.error("delivery not stored: redis unavailable", delivery=guid, gh_event=event, error=str(exc))
            return self._count(event, "unavailable", 503, "queue unavailable; the delivery was not stored, "
                               "redeliver it once Redis is back")
        if not stored:
            return self._count(event, "duplicate", 200, "duplicate delivery")
        self._counter(event, "stored").inc()
        self.log.debug("delivery stored", delivery=guid, gh_event=event, reason=verdict.reason)
        return 202, {"accepted": verdict.reason}

    def _counter(self, event: str, outcome: str) -> Any:
        counter = self._counters.get((event, outcome))
        if counter is None:
            counter = self._counters[event, outcome] = self.metrics.deliveries.labels(event, outcome)
        return counter

    def _count(self, event: str, outcome: str, status: int, message: str) -> tuple[int, dict[str, Any]]:
        self._counter(event, outcome).inc()
        key = "error" if status >= 400 else "status"
        return status, {key: message}


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it passes ``limit``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _reply(send: Send, status: int, payload: dict[str, Any], extra: Sequence[tuple[bytes, bytes]] = ()) -> None:
    body = orjson.dumps(payload)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _learn_bot_login(endpoint: WebhookEndpoint, redis: Redis, slug: str | None) -> None:
    """The worker records the App's slug in Redis; pick it up off the request path."""
    while endpoint.bot_login is None:
        if slug:
            endpoint.bot_login = f"{slug}[bot]"
            return
        with contextlib.suppress(RedisError, OSError):
            found = await redis.get(keys.APP_SLUG)
            if found:
                endpoint.bot_login = f"{found.decode()}[bot]"
                return
        await asyncio.sleep(5)


class WebhookFirst:
    """Sends webhook deliveries straight to their endpoint and everything else through Starlette.

    Deliveries are the one hot path; Starlette's routing and exception middleware cost a measurable
    share of a request there, and the endpoint answers every error itself.
    """

    def __init__(self, app: Starlette, endpoint: WebhookEndpoint, path: str = "/webhooks/github") -> None:
        self.app = app
        self.endpoint = endpoint
        self.path = path
        self.state = app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == self.path:
            await self.endpoint(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def create_app(secret: str, redis_url: str, app_slug: str | None = None,
               metrics: ReceiverMetrics | None = None, sessions: SessionSiteConfig | None = None) -> WebhookFirst:
    """The web app; it opens its Redis connection pool at startup and closes it at shutdown.

    ``sessions``: how the run pages (``/runs/<id>``) sign people in; without it, they answer 404 to everyone.

    ``redis_url`` is any form bot/redis_target.py accepts; behind Sentinel a delivery counts as stored once a
    replica has it too.
    """
    metrics = metrics or ReceiverMetrics()
    endpoint = WebhookEndpoint(secret, metrics)
    target = redis_target.parse(redis_url)
    redis = target.client(Redis, keep_trying=KEEP_TRYING_S, socket_connect_timeout=2, socket_timeout=5,
                          max_connections=64)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(request: Request) -> Response:
        try:
            await asyncio.wait_for(redis.ping(), timeout=2)
        except (TimeoutError, RedisError, OSError) as exc:
            return JSONResponse({"status": "not ready", "redis": f"unreachable: {exc}"}, status_code=503)
        return JSONResponse({"status": "ready", "redis": "ok"})

    async def metrics_view(request: Request) -> Response:
        try:
            async with redis.pipeline(transaction=False) as pipe:
                pipe.zcount(QUEUE, "-inf", int(time.time() * 1000))
                pipe.hgetall(keys.STATS)
                pipe.scard(keys.AWAITING_REVIEW)
                depth, stats, awaiting = await pipe.execute()
            metrics.queue_depth.value = depth
            metrics.worker_stats.fields = {k.decode(): v.decode() for k, v in stats.items()}
            metrics.worker_stats.awaiting = awaiting
        except (RedisError, OSError):
            metrics.queue_depth.value = None
            metrics.worker_stats.fields, metrics.worker_stats.awaiting = {}, None
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        endpoint.store = DeliveryStore(redis, replicas=1 if target.sentinel else 0)
        # Bound once, now that logging is configured: structlog's lazy logger binds again on every call, a few
        # microseconds of each stored delivery even when its debug line is filtered out.
        endpoint.log = logs.get("mull.receiver").bind()
        task = asyncio.create_task(_learn_bot_login(endpoint, redis, app_slug))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await redis.aclose()

    app = Starlette(
        routes=[
            Route("/webhooks/github", endpoint, methods=["POST"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_view),
            *SessionSite(sessions or SessionSiteConfig(cookie_secret=secret), redis).routes(),
        ],
        lifespan=lifespan,
    )
    app.state.webhook = endpoint
    return WebhookFirst(app, endpoint)
