"""The webhook receiver against a real Redis: signatures, dedupe, filtering, bad input, outages."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import redis
from githubkit import webhooks
from starlette.testclient import TestClient

from bot import keys
from bot.delivery_store import ARQ_JOB_PREFIX
from bot.job_codec import deserialize
from bot.jobs import QUEUE, Delivery
from bot.receiver import MAX_BODY, create_app

SECRET = "receiver-test-secret"
EXAMPLES = json.loads((Path(__file__).parent / "fixtures" / "github-webhook-examples.json").read_text())


def all_examples() -> list[tuple[str, dict]]:
    return [(group["name"], payload) for group in EXAMPLES for payload in group["examples"]]


def headers(event: str, body: bytes, guid: str | None = None, secret: str = SECRET) -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": guid or str(uuid.uuid4()),
        "X-Hub-Signature-256": webhooks.sign(secret, body),
        "Content-Type": "application/json",
    }


def labeled(label: str = "mull", sender: str = "octocat") -> bytes:
    return json.dumps({
        "action": "labeled", "label": {"name": label}, "issue": {"number": 7, "title": "t"},
        "repository": {"id": 1, "full_name": "o/r"}, "sender": {"login": sender}, "installation": {"id": 3},
    }).encode()


@pytest.fixture
def client(redis_url: str):
    with TestClient(create_app(SECRET, redis_url, app_slug="mull-test")) as test_client:
        yield test_client


@pytest.fixture
def store(redis_url: str):
    conn = redis.Redis.from_url(redis_url)
    yield conn
    conn.close()


def stored_deliveries(conn: redis.Redis) -> list[Delivery]:
    out = []
    for job_id in conn.zrange(QUEUE, 0, -1):
        job = deserialize(conn.get(ARQ_JOB_PREFIX + job_id.decode()))
        out.append(job["a"][0])
    return out


def test_every_real_example_is_accepted_when_signed_and_refused_unsigned(client) -> None:
    examples = all_examples()
    assert len(examples) == 329
    for name, payload in examples:
        body = json.dumps(payload).encode()
        signed = client.post("/webhooks/github", content=body, headers=headers(name, body))
        assert 200 <= signed.status_code < 300, (name, payload.get("action"), signed.text)
        unsigned = headers(name, body)
        del unsigned["X-Hub-Signature-256"]
        assert client.post("/webhooks/github", content=body, headers=unsigned).status_code == 401


def test_trigger_label_is_stored_once_per_delivery_id(client, store) -> None:
    body = labeled()
    guid = str(uuid.uuid4())
    first = client.post("/webhooks/github", content=body, headers=headers("issues", body, guid))
    second = client.post("/webhooks/github", content=body, headers=headers("issues", body, guid))
    assert first.status_code == 202
    assert second.status_code == 200 and second.json() == {"status": "duplicate delivery"}
    deliveries = stored_deliveries(store)
    assert [d.guid for d in deliveries] == [guid]
    assert deliveries[0].body == body and deliveries[0].event == "issues"
    assert store.exists(keys.seen(guid))


def test_irrelevant_deliveries_are_acknowledged_not_stored(client, store) -> None:
    cases = [
        ("issues", b'{"action": "edited", "issue": {"number": 1}}'),
        ("issues", labeled(sender="mull-test[bot]")),
        ("issue_comment", json.dumps({"action": "created", "comment": {"body": "looks good"}}).encode()),
        ("issue_comment", json.dumps({"action": "created", "comment": {"body": "/mull retry"},
                                      "sender": {"login": "mull-test[bot]"}}).encode()),
        ("star", b'{"action": "created"}'),
    ]
    for event, body in cases:
        response = client.post("/webhooks/github", content=body, headers=headers(event, body))
        assert response.status_code == 200, (event, response.text)
        assert "ignored" in response.json()
    assert stored_deliveries(store) == []


def test_commands_are_stored(client, store) -> None:
    body = json.dumps({"action": "created", "comment": {"body": "please\n/MULL retry"},
                       "sender": {"login": "octocat"}}).encode()
    assert client.post("/webhooks/github", content=body, headers=headers("issue_comment", body)).status_code == 202
    assert len(stored_deliveries(store)) == 1


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        (None, "missing X-Hub-Signature-256"),
        ("sha256=" + "0" * 64, "does not match"),
        ("sha1=0123", "does not match"),
        (webhooks.sign(SECRET, b"other"), "does not match"),
        (webhooks.sign("wrong-secret", labeled()), "MULL_WEBHOOK_SECRET"),
    ],
)
def test_bad_signatures_are_401_and_not_stored(client, store, signature, reason) -> None:
    body = labeled()
    sent = headers("issues", body)
    if signature is None:
        del sent["X-Hub-Signature-256"]
    else:
        sent["X-Hub-Signature-256"] = signature
    response = client.post("/webhooks/github", content=body, headers=sent)
    assert response.status_code == 401
    assert reason in response.json()["error"]
    assert stored_deliveries(store) == []


def test_sha1_signature_is_refused_even_when_correct(client) -> None:
    body = labeled()
    sent = headers("issues", body)
    sent["X-Hub-Signature-256"] = webhooks.sign(SECRET, body, "sha1")
    assert client.post("/webhooks/github", content=body, headers=sent).status_code == 401


@pytest.mark.parametrize("missing", ["X-GitHub-Event", "X-GitHub-Delivery"])
def test_missing_headers_are_400(client, missing) -> None:
    body = labeled()
    sent = headers("issues", body)
    del sent[missing]
    response = client.post("/webhooks/github", content=body, headers=sent)
    assert response.status_code == 400 and missing in response.json()["error"]


@pytest.mark.parametrize(("event", "body"), [("issues", b'{"action": "labeled",'), ("issues", b"[1, 2]"),
                                             ("issue_comment", b"not json /mull"), ("push", b"")])
def test_malformed_json_is_400(client, store, event, body) -> None:
    response = client.post("/webhooks/github", content=body, headers=headers(event, body))
    assert response.status_code == 400, response.text
    assert stored_deliveries(store) == []


def test_form_encoded_payload_names_the_fix(client) -> None:
    body = b"payload=%7B%7D"
    sent = headers("issues", body) | {"Content-Type": "application/x-www-form-urlencoded"}
    response = client.post("/webhooks/github", content=body, headers=sent)
    assert response.status_code == 400 and "application/json" in response.json()["error"]


def test_oversized_body_is_413_by_header_without_reading(client) -> None:
    sent = headers("issues", b"{}") | {"Content-Length": str(MAX_BODY + 1)}
    response = client.post("/webhooks/github", content=b"{}", headers=sent)
    assert response.status_code == 413


def test_oversized_streamed_body_is_413(client) -> None:
    chunk = b" " * (1024 * 1024)

    def chunks():
        for _ in range(26):
            yield chunk

    response = client.post("/webhooks/github", content=chunks(), headers={"X-GitHub-Event": "issues",
                                                                          "X-GitHub-Delivery": "x"})
    assert response.status_code == 413


def test_redis_down_is_503_and_not_acknowledged() -> None:
    app = create_app(SECRET, "redis://127.0.0.1:1/0", app_slug="mull-test")
    with TestClient(app) as down:
        body = labeled()
        response = down.post("/webhooks/github", content=body, headers=headers("issues", body))
        assert response.status_code == 503 and "not stored" in response.json()["error"]
        assert down.get("/readyz").status_code == 503
        assert down.get("/healthz").status_code == 200
        assert "mull_queue_depth" not in down.get("/metrics").text  # unknown, not zero


def test_probes_and_metrics(client) -> None:
    assert client.get("/healthz").json() == {"status": "alive"}
    assert client.get("/readyz").status_code == 200
    body = labeled()
    client.post("/webhooks/github", content=body, headers=headers("issues", body))
    metrics = client.get("/metrics").text
    assert 'mull_deliveries_total{event="issues",outcome="stored"} 1.0' in metrics
    assert "mull_queue_depth 1.0" in metrics  # the stored delivery is due now


def test_worker_stats_are_exported_from_redis(client, store) -> None:
    store.hset(keys.STATS, mapping={"runs|implement|pushed": 3, "runs|critique|pass": 2, "seconds|implement": 90.5,
                                    "count|implement": 3, "tokens|critique": 1234,
                                    "notifications|github|digest": 5, "notifications|slack|needs_you": 1})
    store.sadd(keys.AWAITING_REVIEW, "o/r#4", "o/r#7")
    metrics = client.get("/metrics").text
    assert 'mull_runs_total{outcome="pushed",stage="implement"} 3.0' in metrics
    assert 'mull_run_seconds_sum{stage="implement"} 90.5' in metrics
    assert 'mull_run_seconds_count{stage="implement"} 3.0' in metrics
    assert 'mull_model_tokens_total{stage="critique"} 1234.0' in metrics
    assert "mull_prs_awaiting_review 2.0" in metrics
    assert 'mull_notifications_total{channel="github",kind="digest"} 5.0' in metrics
    assert 'mull_notifications_total{channel="slack",kind="needs_you"} 1.0' in metrics
    assert client.get("/webhooks/github").status_code == 405


def test_redis_stopping_mid_service_turns_deliveries_into_503(tmp_path: Path) -> None:
    from bot.embedded_redis import EmbeddedRedis

    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start()
    try:
        with TestClient(create_app(SECRET, url, app_slug="mull-test")) as live:
            body = labeled()
            assert live.post("/webhooks/github", content=body, headers=headers("issues", body)).status_code == 202
            server.stop()
            guid = str(uuid.uuid4())
            down = live.post("/webhooks/github", content=body, headers=headers("issues", body, guid))
            assert down.status_code == 503 and "redeliver" in down.json()["error"]
            assert live.get("/readyz").status_code == 503
            server.start()
            again = live.post("/webhooks/github", content=body, headers=headers("issues", body, guid))
            assert again.status_code == 202  # the refused delivery was not marked as seen
    finally:
        server.stop()
