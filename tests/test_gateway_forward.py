"""What crosses the gateway: the run's model and the real key go up; the key never comes back down.

The upstream here is the scripted model double. Some of its turns echo the request's headers back, the way
a misconfigured endpoint or proxy might: the agent must still never see the key.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

from doubles.gateway_rig import CHAT, UPSTREAM_KEY, agent_client, chat, running_gateway
from doubles.messages_model import MessagesModel
from doubles.model_server import ScriptedModel

UPSTREAM_HEADERS = {"host", "accept", "accept-encoding", "connection", "user-agent", "content-length",
                    "content-type", "authorization", "x-api-key", "anthropic-version", "anthropic-beta",
                    "openai-beta"}


async def _one(upstream: str, body: dict[str, Any] | bytes, *, path: str = CHAT, model: str = "run-model",
               redact: tuple[str, ...] = (), **headers: str) -> tuple[int, str, dict[str, Any]]:
    """(status, text the agent received, the run's usage) for one request with the run's token."""
    async with running_gateway(upstream, redact=redact) as gateway, gateway.run("r1", model, 10, 100_000) as grant, \
            agent_client(gateway, grant.token, **headers) as client:
        if isinstance(body, bytes):
            response = await client.post(path, content=body, headers={"content-type": "application/json"})
        else:
            response = await client.post(path, json=body)
        return response.status_code, response.text, vars(grant.usage) | {"token": grant.token}


def test_the_upstream_gets_the_runs_model_and_the_real_key_never_the_token(scripted_model: ScriptedModel) -> None:
    scripted_model.script("fwd-model", [{"content": "ok"}])
    status, _, usage = asyncio.run(_one(scripted_model.url, chat("fwd-model")))
    assert status == 200
    [seen] = scripted_model.requests
    assert seen["body"]["model"] == "run-model"
    assert seen["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert usage["token"] not in json.dumps(seen)


def test_the_agents_own_credentials_and_hop_by_hop_headers_stay_behind(scripted_model: ScriptedModel) -> None:
    scripted_model.script("fwd-headers", [{"echo_headers": True}])
    status, text, usage = asyncio.run(_one(
        scripted_model.url, chat("fwd-headers"), cookie="session=1", **{
            "x-api-key": "agent-chosen", "proxy-authorization": "Basic eDp5", "x-forwarded-for": "169.254.169.254",
            "openai-organization": "someone-else", "te": "trailers", "openai-beta": "assistants=v2",
            "anthropic-beta": "prompt-caching-2024-07-31, mcp-client-2025-04-04,web-fetch-2025-09-10"}))
    assert status == 200
    echoed = json.loads(json.loads(text)["choices"][0]["message"]["content"])
    assert set(echoed) <= UPSTREAM_HEADERS, set(echoed) - UPSTREAM_HEADERS
    assert "x-api-key" not in echoed and "cookie" not in echoed
    assert echoed["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert "openai-beta" not in echoed
    assert echoed["authorization"] == "Bearer [redacted]"
    assert usage["token"] not in text


def test_an_upstream_that_echoes_the_key_does_not_hand_it_to_the_agent(scripted_model: ScriptedModel) -> None:
    scripted_model.script("fwd-echo-body", [{"echo_headers": True}])
    scripted_model.script("fwd-echo-status", [{"echo_headers": True, "status": 400}])
    status, text, _ = asyncio.run(_one(scripted_model.url, chat("fwd-echo-body")))
    assert status == 200 and "Bearer [redacted]" in text
    assert UPSTREAM_KEY not in text
    status, text, _ = asyncio.run(_one(scripted_model.url, chat("fwd-echo-status")))
    assert status == 400 and "[redacted]" in text
    assert UPSTREAM_KEY not in text
    assert [r["authorization"] for r in scripted_model.requests] == [f"Bearer {UPSTREAM_KEY}"] * 2


def test_operator_listed_secrets_are_scrubbed_from_answers(scripted_model: ScriptedModel) -> None:
    scripted_model.script("fwd-redact", [{"content": "the token is ghs_installation_abc123, use it"}])
    status, text, _ = asyncio.run(_one(scripted_model.url, chat("fwd-redact"), redact=("ghs_installation_abc123",)))
    assert status == 200
    assert json.loads(text)["choices"][0]["message"]["content"] == "the token is [redacted], use it"


def test_usage_of_a_plain_answer_is_counted(scripted_model: ScriptedModel) -> None:
    scripted_model.script("fwd-usage", [{"content": "counted", "usage": {"prompt_tokens": 321,
                                                                         "completion_tokens": 45}}])
    status, _, usage = asyncio.run(_one(scripted_model.url, chat("fwd-usage")))
    assert status == 200
    assert (usage["requests"], usage["input_tokens"], usage["output_tokens"], usage["estimated"]) == (1, 321, 45, False)


def test_upstream_errors_pass_through_with_their_status(scripted_model: ScriptedModel) -> None:
    scripted_model.script("fwd-500", [{"status": 503}])
    status, text, usage = asyncio.run(_one(scripted_model.url, chat("fwd-500")))
    assert status == 503
    assert json.loads(text)["error"]["message"] == "scripted error 503"
    assert (usage["requests"], usage["input_tokens"], usage["output_tokens"]) == (1, 0, 0)


def test_bodies_that_are_too_large_or_not_a_json_object_are_refused(scripted_model: ScriptedModel) -> None:
    scripted_model.script("fwd-bad", [{"content": "unreached"}])

    async def scenario() -> list[tuple[int, str]]:
        async with running_gateway(scripted_model.url, max_body=4096) as gateway, \
                gateway.run("r1", "m", 10, 10_000) as grant, agent_client(gateway, grant.token) as client:
            answers = []
            big = chat("fwd-bad", messages=[{"role": "user", "content": "fwd-bad " + "x" * 5000}])
            for body in (json.dumps(big).encode(), b"{not json", b"[1, 2]", b'"fwd-bad"'):
                response = await client.post(CHAT, content=body)
                answers.append((response.status_code, response.json()["error"]["message"]))

            async def chunked():  # no content-length: the cap must hold while reading
                yield json.dumps(big).encode()

            response = await client.post(CHAT, content=chunked())
            answers.append((response.status_code, response.json()["error"]["message"]))
            return answers

    answers = asyncio.run(scenario())
    assert [status for status, _ in answers] == [413, 400, 400, 400, 413]
    assert "over 4096 bytes" in answers[0][1] and "not valid JSON" in answers[1][1]
    assert "not an object" in answers[2][1]
    assert scripted_model.requests == []


def test_an_unreachable_upstream_is_a_502_that_names_the_host_not_the_key() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    status, text, usage = asyncio.run(_one(f"http://127.0.0.1:{port}/v1", chat("x")))
    assert status == 502
    message = json.loads(text)["error"]["message"]
    assert "127.0.0.1" in message and "could not be reached" in message
    assert UPSTREAM_KEY not in text
    assert usage["requests"] == 1


def test_anthropic_messages_go_to_messages_with_x_api_key_and_count_usage() -> None:
    body = {"model": "claude-whatever", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
    with MessagesModel(input_tokens=40, output_tokens=7) as upstream:
        status, text, usage = asyncio.run(_one(upstream.url, body, path="/v1/messages",
                                               **{"x-api-key": "placeholder"}))
        [seen] = upstream.requests
    assert status == 200 and json.loads(text)["content"][0]["text"] == "hello from messages"
    assert seen["body"]["model"] == "run-model"
    assert seen["headers"]["x-api-key"] == UPSTREAM_KEY and "authorization" not in seen["headers"]
    assert seen["headers"]["anthropic-version"] == "2023-06-01"
    assert (usage["input_tokens"], usage["output_tokens"], usage["estimated"]) == (40, 7, False)


def test_anthropic_streams_are_counted_and_an_echoed_key_is_scrubbed() -> None:
    body = {"model": "m", "max_tokens": 100, "stream": True,
            "messages": [{"role": "user", "content": "echo-headers please"}]}
    with MessagesModel(input_tokens=30, output_tokens=9) as upstream:
        status, text, usage = asyncio.run(_one(upstream.url, body, path="/v1/messages"))
        [seen] = upstream.requests
    assert status == 200 and "event: message_stop" in text
    assert seen["headers"]["x-api-key"] == UPSTREAM_KEY
    assert UPSTREAM_KEY not in text and "[redacted]" in text
    assert (usage["input_tokens"], usage["output_tokens"], usage["estimated"]) == (30, 9, False)
