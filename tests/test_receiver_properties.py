"""Whatever a client sends, the receiver answers 2xx/4xx, or 503 when Redis could not store the delivery.

GitHub retries nothing on its own and shows a 500 as Mull's fault; and anyone on the network can post here. So
the hot path's answer to arbitrary headers (as bytes) and bodies must be a status that names the problem. The
bodies are signed with the right secret half of the time, so the checks after the signature see them too.
The endpoint is driven as the raw ASGI callable it is, on one event loop, to keep a few hundred examples fast.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from githubkit import webhooks
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from bot.delivery_store import DeliveryStore
from bot.metrics import ReceiverMetrics
from bot.receiver import WebhookEndpoint

SECRET = "receiver-property-secret"
DOWN = "redis://127.0.0.1:1/0"  # nothing listens on port 1
EXAMPLES = json.loads((Path(__file__).parent / "fixtures" / "github-webhook-examples.json").read_text())
REAL = [(group["name"], json.dumps(payload).encode()) for group in EXAMPLES[:40] for payload in group["examples"][:2]]
STORED = [  # deliveries the worker acts on, so the draws reach the store too
    ("issues", json.dumps({"action": "labeled", "label": {"name": "mull"}, "issue": {"number": 7},
                           "repository": {"id": 1, "full_name": "o/r"}, "sender": {"login": "octocat"}}).encode()),
    ("issue_comment", json.dumps({"action": "created", "comment": {"body": "/mull go"},
                                  "sender": {"login": "octocat"}}).encode()),
    ("installation", b'{"action": "created", "installation": {"id": 3}}'),
    ("push", b'{"ref": "refs/heads/mull/issue-7"}'),
]
REAL += STORED * 10
EVENTS = sorted({name for name, _ in REAL} | {"ping", "issues", "issue_comment", "pull_request_review"})
PROPERTY = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                                       max_size=4), max_leaves=20)
bodies = st.one_of(
    st.binary(max_size=600),
    st.sampled_from([body for _, body in REAL]),
    st.dictionaries(st.sampled_from(["action", "issue", "label", "comment", "sender", "repository", "pull_request",
                                     "installation", "review"]), json_values, max_size=6).map(
        lambda d: json.dumps(d).encode()),
)
header_values = st.binary(max_size=80)


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[tuple[bytes, bytes]], list[bytes]]:
    """Headers as ASGI gives them (lowercase names, raw bytes) and the body in arbitrary chunks.

    Each header is mostly what GitHub would send, sometimes arbitrary bytes, sometimes absent, so the draws
    reach every check: the size, the signature, the headers after it, the payload and the store.
    """
    event, body = draw(st.one_of(st.sampled_from(REAL), st.tuples(st.sampled_from(EVENTS), bodies)))
    signed = webhooks.sign(SECRET, body).encode()
    plausible: dict[bytes, Any] = {
        b"x-hub-signature-256": st.just(signed),
        b"x-github-event": st.one_of(st.just(event), st.sampled_from(EVENTS)).map(str.encode),
        b"x-github-delivery": st.uuids().map(lambda u: str(u).encode()),
        b"content-type": st.sampled_from([b"application/json", b"application/json; charset=utf-8"]),
        b"content-length": st.just(str(len(body)).encode()),
    }
    odd = st.one_of(header_values, st.sampled_from([signed + b"\xff", signed[:-1] + b"\xe9", b"sha256=\xff"]))
    headers = []
    for name, values in plausible.items():
        roll = draw(st.integers(0, 9))
        if roll:
            headers.append((name, draw(values if roll > 1 else odd)))
    headers += draw(st.lists(st.tuples(header_values, header_values), max_size=2))
    cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=3)))
    chunks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    return headers, chunks


async def post(endpoint: WebhookEndpoint, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> int:
    messages = [{"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
                for i, chunk in enumerate(chunks)]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/webhooks/github", "headers": headers}
    await endpoint(scope, receive, send)  # type: ignore[arg-type]
    assert sent[0]["type"] == "http.response.start"
    return int(sent[0]["status"])


@pytest.fixture
def loop() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as runner:
        yield runner


def endpoint_on(url: str) -> WebhookEndpoint:
    endpoint = WebhookEndpoint(SECRET, ReceiverMetrics())
    endpoint.store = DeliveryStore(Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2))
    endpoint.bot_login = "mull-test[bot]"
    return endpoint


@PROPERTY
@given(delivery=deliveries())
def test_with_redis_up_no_input_answers_5xx(loop: asyncio.Runner, redis_url: str,
                                            delivery: tuple[list[tuple[bytes, bytes]], list[bytes]]) -> None:
    endpoint = loop.run(_endpoint(redis_url))
    status = loop.run(post(endpoint, *delivery))
    event(f"HTTP {status}")  # --hypothesis-show-statistics: how many got past the signature, how many were stored
    assert 200 <= status < 500, status


@PROPERTY
@given(delivery=deliveries())
def test_with_redis_down_the_only_5xx_is_503(loop: asyncio.Runner,
                                             delivery: tuple[list[tuple[bytes, bytes]], list[bytes]]) -> None:
    endpoint = loop.run(_endpoint(DOWN))
    status = loop.run(post(endpoint, *delivery))
    event(f"HTTP {status}")
    assert 200 <= status < 500 or status == 503, status
    assert status != 202  # nothing is acknowledged as stored


def test_a_non_ascii_signature_is_401(loop: asyncio.Runner, redis_url: str) -> None:
    body = b'{"action": "opened"}'
    signed = webhooks.sign(SECRET, body).encode()
    for signature in (signed[:-1] + b"\xe9", b"sha256=\xff\xfe", "sha256=é".encode()):
        headers = [(b"x-hub-signature-256", signature), (b"x-github-event", b"issues"), (b"x-github-delivery", b"1")]
        assert loop.run(post(loop.run(_endpoint(redis_url)), headers, [body])) == 401


async def _endpoint(url: str) -> WebhookEndpoint:
    """Made on the runner's loop, where its Redis connections will live."""
    return endpoint_on(url)
