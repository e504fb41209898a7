"""Sinks: Slack and signed JSON webhooks get each message once, failures are retried once and never raised."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from typing import Any

import httpx
import pytest
import respx
from doubles import sink_dns
from doubles.recording_log import RecordingLog

from worker.repo_config.schema import Sinks
from worker.views.sinks import SinkMessage, SinkTargets, body_of, send, sign, verify

SLACK_PATH = "/services/T000/B000/XXXXsecretpathXXXX"
SLACK = "https://hooks.slack.example" + SLACK_PATH
JSON_URL = "https://receiver.example/mull/events?token=querysecret"
SECRET = b"s3cr3t-hmac-key"
MESSAGE = SinkMessage(kind="needs_you", id="needs_you:acme/widgets#42:review", repo="acme/widgets",
                      text="*acme/widgets#42* needs your review — “Füge Cache hinzu”",
                      data={"pull": 42, "reviewers": ["octocat"], "url": "https://github.com/acme/widgets/pull/42"})
SLACK_AT, JSON_AT = sink_dns.pinned(SLACK), sink_dns.pinned(JSON_URL)  # where the sinks' hosts resolve
BOTH = SinkTargets(slack_url=SLACK, json_url=JSON_URL, json_secret=SECRET, json_secret_env="MULL_SINK_SECRET_TEST")


@pytest.fixture(autouse=True)
def _resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    sink_dns.use(monkeypatch)


def run(targets: SinkTargets, message: SinkMessage = MESSAGE, log: RecordingLog | None = None) -> list[str]:
    async def go() -> list[str]:
        async with httpx.AsyncClient() as client:
            return await send(client, targets, message, log or RecordingLog())
    return asyncio.run(go())


def test_both_sinks_get_the_message_and_the_json_one_is_signed() -> None:
    log = RecordingLog()
    with respx.mock(assert_all_called=True) as mock:
        slack = mock.post(SLACK_AT).respond(200, text="ok")
        receiver = mock.post(JSON_AT).respond(204)
        assert run(BOTH, log=log) == ["slack", "json"]
    assert slack.call_count == 1 and receiver.call_count == 1
    assert json.loads(slack.calls[0].request.content) == {"text": MESSAGE.text}
    assert slack.calls[0].request.headers["content-type"] == "application/json"

    request = receiver.calls[0].request
    body = request.content
    assert json.loads(body) == {"type": "needs_you", "id": MESSAGE.id, "repo": "acme/widgets", "text": MESSAGE.text,
                                "data": MESSAGE.data}
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-mull-event"] == "needs_you"
    assert request.headers["x-mull-delivery"] == MESSAGE.id
    expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()  # computed here, not by the module
    assert request.headers["x-mull-signature-256"] == expected == sign(SECRET, body)
    assert verify(SECRET, body, request.headers["x-mull-signature-256"])
    assert not verify(b"other", body, expected) and not verify(SECRET, body + b" ", expected)
    assert body == body_of(MESSAGE) and "Füge".encode() in body  # UTF-8, exactly the bytes that were signed
    assert log.warnings() == []


def test_a_digest_is_sent_with_its_kind() -> None:
    digest = SinkMessage(kind="digest", id="digest:acme/widgets:2026-03-27T08:00Z", repo="acme/widgets",
                         text="3 pull requests wait for review", data={"pulls": [1, 2, 3]})
    with respx.mock() as mock:
        receiver = mock.post(JSON_AT).respond(200)
        assert run(SinkTargets(json_url=JSON_URL, json_secret=SECRET), digest) == ["json"]
    assert receiver.calls[0].request.headers["x-mull-event"] == "digest"
    assert json.loads(receiver.calls[0].request.content)["type"] == "digest"


@pytest.mark.parametrize("environ", [{}, {"MULL_SINK_SECRET_TEST": ""}], ids=["unset", "empty"])
def test_a_json_sink_without_its_secret_is_skipped_with_a_warning(environ: dict[str, str]) -> None:
    sinks = Sinks(slack_webhook=SLACK, json_webhook=JSON_URL, json_secret_env="MULL_SINK_SECRET_ACME")
    targets = SinkTargets.from_config(sinks, environ)
    assert targets.json_secret is None
    log = RecordingLog()
    with respx.mock(assert_all_called=False) as mock:
        slack = mock.post(SLACK_AT).respond(200)
        receiver = mock.post(JSON_AT).respond(200)
        assert run(targets, log=log) == ["slack"]
    assert slack.called and not receiver.called
    [(event, kw)] = log.warnings()
    assert event == "sink_secret_missing" and kw["sink"] == "json" and kw["env"] == "MULL_SINK_SECRET_ACME"
    assert kw["host"] == "receiver.example"


def test_a_json_sink_without_a_secret_variable_is_skipped() -> None:
    log = RecordingLog()
    with respx.mock(assert_all_called=False) as mock:
        receiver = mock.post(JSON_AT).respond(200)
        assert run(SinkTargets.from_config(Sinks(json_webhook=JSON_URL), {"X": "y"}), log=log) == []
    assert not receiver.called
    assert [event for event, _ in log.warnings()] == ["sink_secret_missing"]


def test_from_config_reads_the_secret_from_the_environment() -> None:
    sinks = Sinks(slack_webhook=SLACK, json_webhook=JSON_URL, json_secret_env="MULL_SINK_SECRET_ACME")
    targets = SinkTargets.from_config(sinks, {"MULL_SINK_SECRET_ACME": "s3cr3t-hmac-key", "OTHER": "x"})
    assert targets == SinkTargets(slack_url=SLACK, json_url=JSON_URL, json_secret=SECRET,
                                 json_secret_env="MULL_SINK_SECRET_ACME")
    assert SinkTargets.from_config(Sinks(), {"MULL_SINK_SECRET_ACME": "x"}) == SinkTargets()
    shown = repr(targets)
    assert "MULL_SINK_SECRET_ACME" in shown
    assert "s3cr3t" not in shown and SLACK_PATH not in shown and "querysecret" not in shown


def test_nothing_configured_sends_nothing() -> None:
    log = RecordingLog()
    with respx.mock(assert_all_called=False) as mock:
        anything = mock.route().respond(200)
        assert run(SinkTargets(), log=log) == []
    assert not anything.called and log.lines == []


@pytest.mark.parametrize("first", [httpx.Response(500), httpx.Response(503), httpx.ReadTimeout("slow"),
                                   httpx.ConnectTimeout("slow"), httpx.ConnectError("refused")],
                         ids=["500", "503", "read-timeout", "connect-timeout", "connect-error"])
def test_a_passing_failure_is_retried_once(first: httpx.Response | Exception) -> None:
    log = RecordingLog()
    with respx.mock() as mock:
        slack = mock.post(SLACK_AT).mock(side_effect=[first, httpx.Response(200)])
        assert run(SinkTargets(slack_url=SLACK), log=log) == ["slack"]
    assert slack.call_count == 2 and log.warnings() == []


@pytest.mark.parametrize(("answers", "status"), [
    ([httpx.Response(500), httpx.Response(502)], 502),
    ([httpx.ReadTimeout("slow"), httpx.ReadTimeout("slow")], "timeout"),
    ([httpx.ConnectError("refused"), httpx.ConnectError("refused")], "ConnectError"),
], ids=["5xx-twice", "timeout-twice", "no-connection-twice"])
def test_a_second_failure_is_logged_not_raised(answers: list[Any], status: int | str) -> None:
    log = RecordingLog()
    with respx.mock() as mock:
        receiver = mock.post(JSON_AT).mock(side_effect=answers)
        assert run(SinkTargets(json_url=JSON_URL, json_secret=SECRET), log=log) == []
    assert receiver.call_count == 2
    [(event, kw)] = log.warnings()
    assert event == "sink_failed" and kw["sink"] == "json" and kw["status"] == status and kw["attempts"] == 2
    assert kw["host"] == "receiver.example"


@pytest.mark.parametrize("status", [400, 403, 404, 410, 302])
def test_a_refusal_is_not_retried(status: int) -> None:
    log = RecordingLog()
    with respx.mock() as mock:
        slack = mock.post(SLACK_AT).respond(status)
        receiver = mock.post(JSON_AT).respond(200)
        assert run(BOTH, log=log) == ["json"]  # one sink failing does not stop the other
    assert slack.call_count == 1 and receiver.call_count == 1
    [(event, kw)] = log.warnings()
    assert (event, kw["sink"], kw["status"], kw["attempts"]) == ("sink_failed", "slack", status, 1)


def test_no_log_line_holds_a_secret_or_a_webhook_path() -> None:
    log = RecordingLog()
    with respx.mock() as mock:
        # An error whose message quotes the URL, as some transports' do.
        unreachable = httpx.ConnectError(f"cannot reach {SLACK}")
        mock.post(SLACK_AT).mock(side_effect=[httpx.Response(500, text=SLACK), unreachable])
        mock.post(JSON_AT).mock(side_effect=[httpx.Response(401, text=SECRET.decode())])
        assert run(BOTH, log=log) == []
    with respx.mock() as mock:
        mock.post(SLACK_AT).respond(200)
        unsigned = SinkTargets(slack_url=SLACK, json_url=JSON_URL, json_secret_env="MULL_SINK_SECRET_ACME")
        assert run(unsigned, log=log) == ["slack"]
    with respx.mock() as mock:
        mock.post(JSON_AT).respond(200)
        assert run(SinkTargets(json_url=JSON_URL, json_secret=SECRET), log=log) == ["json"]
    events = [event for _, event, _ in log.lines]
    assert events == ["sink_failed", "sink_failed", "sink_secret_missing", "sink_sent", "sink_sent"]
    logged = repr(log.lines)
    for secret in (SLACK_PATH, "XXXXsecretpath", SECRET.decode(), "querysecret", "/mull/events"):
        assert secret not in logged
    assert "hooks.slack.example" in logged and "receiver.example" in logged


@pytest.mark.parametrize(("kind", "id_"), [("review", "x"), ("digest", ""), ("digest", "a\nb"), ("digest", "ünï")])
def test_a_message_that_cannot_be_sent_is_refused_when_made(kind: str, id_: str) -> None:
    with pytest.raises(ValueError):
        SinkMessage(kind=kind, id=id_, repo="acme/widgets", text="t")  # type: ignore[arg-type]
