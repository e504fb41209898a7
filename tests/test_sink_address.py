"""Sinks reach public addresses only: refused by validation (literal hosts) and at send time (what names resolve to)."""

from __future__ import annotations

import asyncio
import ipaddress

import httpx
import pytest
import respx
from doubles import sink_dns
from doubles.recording_log import RecordingLog

from bot.settings import load_settings
from worker.repo_config import ConfigFileError, Defaults, Sinks, parse_config
from worker.views.sink_address import PUBLIC_ONLY, SinkPolicy, forbidden
from worker.views.sinks import SinkMessage, SinkTargets, send

SRC = "acme/widgets:.github/mull.yml"
MESSAGE = SinkMessage(kind="digest", id="digest:1", repo="acme/widgets", text="2 pull requests wait")
PRIVATE = ["127.0.0.1", "10.0.0.1", "169.254.169.254", "172.16.3.4", "192.168.1.1", "100.64.0.1", "0.0.0.0",
           "224.0.0.1", "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1"]


def url_of(address: str) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"https://{host}/hook"


def run(targets: SinkTargets, log: RecordingLog) -> list[str]:
    async def go() -> list[str]:
        async with httpx.AsyncClient() as client:
            return await send(client, targets, MESSAGE, log)
    return asyncio.run(go())


@pytest.mark.parametrize("address", PRIVATE)
def test_non_public_addresses_are_named(address: str) -> None:
    assert forbidden(ipaddress.ip_address(address)) is not None
    assert forbidden(ipaddress.ip_address("93.184.216.34")) is None
    assert forbidden(ipaddress.ip_address("2606:4700::1111")) is None


@pytest.mark.parametrize(("url", "reason"), [
    ("https://127.0.0.1/hook", "loopback"), ("https://10.0.0.1/hook", "private"),
    ("https://169.254.169.254/latest/meta-data", "link-local"), ("https://localhost:8443/x", "this machine"),
    ("https://[::1]/x", "loopback"), ("https://100.64.1.2/x", "carrier-grade NAT"),
])
def test_validation_refuses_literal_private_hosts(url: str, reason: str) -> None:
    for key in ("slack_webhook", "json_webhook"):
        with pytest.raises(ConfigFileError) as err:
            parse_config(f"sinks: {{{key}: '{url}'}}\n", SRC, Defaults())
        [problem] = err.value.problems
        assert problem.key == f"sinks.{key}"
        assert reason in problem.message and "MULL_SINK_ALLOW_HOSTS" in problem.message


def test_validation_accepts_public_hosts_and_what_the_operator_allows() -> None:
    public = parse_config("sinks: {slack_webhook: 'https://93.184.216.34/x', json_webhook: 'https://hooks.example/'}\n",
                          SRC, Defaults())
    assert public.sinks.slack_webhook == "https://93.184.216.34/x"
    allowed = Defaults(sink_allowed=("10.0.0.0/8", "localhost"))
    config = parse_config("sinks: {slack_webhook: 'https://10.0.0.1/x', json_webhook: 'https://localhost/y'}\n", SRC,
                          allowed)
    assert config.sinks.json_webhook == "https://localhost/y"


def test_the_operator_setting_reaches_the_defaults() -> None:
    settings = load_settings({"MULL_SINK_ALLOW_HOSTS": " hooks.intranet, 10.1.0.0/16,[fd00::1]"}, env_file=None)
    assert Defaults.from_settings(settings).sink_allowed == ("hooks.intranet", "10.1.0.0/16", "fd00::1")


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.1", "169.254.169.254", "::1"])
def test_a_literal_private_sink_is_refused_at_send_time(address: str) -> None:
    log = RecordingLog()
    with respx.mock(assert_all_called=False) as mock:
        anything = mock.route().respond(200)
        assert run(SinkTargets(slack_url=url_of(address)), log) == []
    assert not anything.called
    [(event, kw)] = log.warnings()
    assert event == "sink_refused" and "MULL_SINK_ALLOW_HOSTS" in kw["reason"]


@pytest.mark.parametrize("answers", [["127.0.0.1"], ["10.0.0.1"], ["169.254.169.254"], ["93.184.216.34", "10.0.0.7"]],
                         ids=["loopback", "private", "metadata", "one-private-among-public"])
def test_a_name_resolving_to_a_private_address_is_refused(monkeypatch: pytest.MonkeyPatch, answers: list[str]) -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return answers
    monkeypatch.setattr("worker.views.sink_address.system_resolver", resolve)
    log = RecordingLog()
    with respx.mock(assert_all_called=False) as mock:
        anything = mock.route().respond(200)
        assert run(SinkTargets(slack_url="https://rebind.example/hook"), log) == []
    assert not anything.called
    [(event, kw)] = log.warnings()
    assert event == "sink_refused" and kw["host"] == "rebind.example" and "resolves to" in kw["reason"]


def test_a_public_sink_gets_the_request_at_the_address_that_was_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    sink_dns.use(monkeypatch, {"hooks.example": "93.184.216.34"})
    log = RecordingLog()
    with respx.mock() as mock:
        hook = mock.post("https://93.184.216.34:8443/hook?x=1").respond(200)
        assert run(SinkTargets(slack_url="https://hooks.example:8443/hook?x=1"), log) == ["slack"]
    request = hook.calls[0].request
    assert request.headers["host"] == "hooks.example:8443"  # and TLS checks the certificate of this name:
    assert request.extensions["sni_hostname"] == "hooks.example"
    assert [event for _, event, _ in log.lines] == ["sink_sent"]


def test_the_operator_may_allow_a_private_host(monkeypatch: pytest.MonkeyPatch) -> None:
    sink_dns.use(monkeypatch, {"hooks.intranet": "10.1.2.3"})
    for policy in (SinkPolicy(("hooks.intranet",)), SinkPolicy(("10.1.0.0/16",))):
        with respx.mock() as mock:
            hook = mock.post("https://10.1.2.3/hook").respond(200)
            assert run(SinkTargets(slack_url="https://hooks.intranet/hook", policy=policy), RecordingLog()) == ["slack"]
        assert hook.called
    log = RecordingLog()
    assert run(SinkTargets(slack_url="https://hooks.intranet/hook", policy=PUBLIC_ONLY), log) == []
    assert [event for event, _ in log.warnings()] == ["sink_refused"]


def test_a_redirect_is_not_followed(monkeypatch: pytest.MonkeyPatch) -> None:
    sink_dns.use(monkeypatch, {"hooks.example": "93.184.216.34"})
    log = RecordingLog()
    with respx.mock(assert_all_called=False) as mock:
        mock.post("https://93.184.216.34/hook").respond(302, headers={"Location": "http://169.254.169.254/latest"})
        metadata = mock.route(host="169.254.169.254").respond(200)
        assert run(SinkTargets(slack_url="https://hooks.example/hook"), log) == []
    assert not metadata.called
    [(event, kw)] = log.warnings()
    assert (event, kw["status"], kw["attempts"]) == ("sink_failed", 302, 1)


def test_a_name_that_does_not_resolve_is_retried_then_logged(monkeypatch: pytest.MonkeyPatch) -> None:
    sink_dns.use(monkeypatch, {})
    log = RecordingLog()
    assert run(SinkTargets(slack_url="https://gone.example/hook"), log) == []
    [(event, kw)] = log.warnings()
    assert (event, kw["status"], kw["attempts"]) == ("sink_failed", "OSError", 2)


def test_the_secret_comes_only_from_a_mull_sink_secret_variable() -> None:
    environ = {"GITHUB_TOKEN": "ghs_token", "MULL_WEBHOOK_SECRET": "hook", "MULL_SINK_SECRET_ACME": "hmac"}
    with pytest.raises(ValueError, match="MULL_SINK_SECRET_"):
        Sinks(json_webhook="https://hooks.example/", json_secret_env="GITHUB_TOKEN")
    # A name stored before the rule, not validated again, still reads nothing.
    for name in ("GITHUB_TOKEN", "MULL_WEBHOOK_SECRET"):
        stale = Sinks.model_construct(json_webhook="https://hooks.example/", json_secret_env=name)
        assert SinkTargets.from_config(stale, environ).json_secret is None
    ok = Sinks(json_webhook="https://hooks.example/", json_secret_env="MULL_SINK_SECRET_ACME")
    assert SinkTargets.from_config(ok, environ).json_secret == b"hmac"
