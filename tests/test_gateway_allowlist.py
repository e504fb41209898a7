"""Only named fields, the agent's own tools and harmless betas reach the provider.

A provider's server-side features reach the network (MCP servers at any URL, web fetch and search, code
execution) or multiply the bill (``n``, ``service_tier``): each would be a way out of the sandbox or past
the budget. The gateway builds the upstream body from an allow-list and says, by name, what it left out.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from doubles.gateway_rig import CHAT, agent_client, chat, running_gateway
from doubles.messages_model import MessagesModel
from doubles.model_server import ScriptedModel

from worker.gateway.anthropic_messages import ALLOWED_FIELDS as ANTHROPIC_FIELDS
from worker.gateway.openai_chat import ALLOWED_FIELDS as OPENAI_FIELDS

MESSAGES = "/v1/messages"
CLIENT_TOOL = {"name": "edit", "description": "edit a file", "input_schema": {"type": "object"}}
FUNCTION = {"type": "function", "function": {"name": "edit", "parameters": {"type": "object"}}}


async def _send(upstream: str, path: str, body: dict[str, Any], **headers: str) -> tuple[int, dict, list[dict]]:
    """(status, the run's usage, the transcript's records) for one request."""
    async with running_gateway(upstream, shutdown_seconds=0) as gateway, \
            gateway.run("r1", "run-model", 10, 100_000) as grant, \
            agent_client(gateway, grant.token, **headers) as client:
        status = (await client.post(path, json=body)).status_code
        records = [json.loads(line) for line in grant.transcript.read_text().splitlines()]
        return status, vars(grant.usage), records


def test_anthropic_server_tools_mcp_servers_and_unsafe_betas_never_reach_the_provider() -> None:
    body = {"model": "x", "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}],
            "mcp_servers": [{"type": "url", "url": "https://attacker.example/mcp", "name": "exfil"}],
            "container": "c-1", "metadata": {"user_id": "u"}, "service_tier": "auto",
            "tools": [CLIENT_TOOL, {**CLIENT_TOOL, "name": "run", "type": "custom"},
                      {"type": "web_fetch_20250910", "name": "web_fetch"},
                      {"type": "web_search_20250305", "name": "web_search"},
                      {"type": "code_execution_20250825", "name": "code_execution"}],
            "tool_choice": {"type": "auto"}, "temperature": 0.2}
    betas = "mcp-client-2025-04-04, prompt-caching-2024-07-31,web-fetch-2025-09-10,interleaved-thinking-2025-05-14"
    with MessagesModel() as upstream:
        status, _, [record] = asyncio.run(_send(upstream.url, MESSAGES, body, **{"anthropic-beta": betas}))
        [seen] = upstream.requests
    assert status == 200
    assert set(seen["body"]) <= ANTHROPIC_FIELDS
    assert [t["name"] for t in seen["body"]["tools"]] == ["edit", "run"]
    assert seen["body"]["tool_choice"] == {"type": "auto"} and seen["body"]["temperature"] == 0.2
    assert seen["headers"]["anthropic-beta"] == "prompt-caching-2024-07-31,interleaved-thinking-2025-05-14"
    assert record["dropped"] == ["container", "mcp_servers", "metadata", "service_tier", "tools[2]", "tools[3]",
                                 "tools[4]", "anthropic-beta:mcp-client-2025-04-04",
                                 "anthropic-beta:web-fetch-2025-09-10"]
    assert "attacker" not in json.dumps(record)


def test_with_only_server_tools_the_tools_and_the_tool_choice_go() -> None:
    body = {"model": "x", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "web_search_20250305", "name": "web_search"}], "tool_choice": {"type": "any"}}
    with MessagesModel() as upstream:
        status, _, [record] = asyncio.run(_send(upstream.url, MESSAGES, body, **{"anthropic-beta": "x" * 200}))
        [seen] = upstream.requests
    assert status == 200
    assert "tools" not in seen["body"] and "tool_choice" not in seen["body"]
    assert "anthropic-beta" not in seen["headers"]
    assert record["dropped"] == ["tools[0]", "tool_choice", "anthropic-beta:(unreadable)"]


def test_openai_server_features_and_extra_choices_never_reach_the_provider(scripted_model: ScriptedModel) -> None:
    scripted_model.script("allow-openai", [{"content": "ok"}])
    body = chat("allow-openai", n=128, service_tier="priority", store=True, metadata={"a": "b"},
                web_search_options={}, logit_bias={"1": 100}, user="someone", seed=7, reasoning_effort="low",
                tools=[FUNCTION, {"type": "web_search"}, {"type": "custom", "custom": {"name": "x"}}],
                tool_choice="auto", parallel_tool_calls=False, stream_options={"include_usage": True})
    status, _, [record] = asyncio.run(_send(scripted_model.url, CHAT, body, **{"openai-beta": "assistants=v2"}))
    [seen] = scripted_model.requests
    assert status == 200
    assert set(seen["body"]) <= OPENAI_FIELDS and "n" not in seen["body"]
    assert seen["body"]["tools"] == [FUNCTION]
    assert (seen["body"]["seed"], seen["body"]["reasoning_effort"], seen["body"]["parallel_tool_calls"]) == (
        7, "low", False)
    assert record["dropped"] == ["logit_bias", "metadata", "n", "service_tier", "store", "user",
                                 "web_search_options", "tools[1]", "tools[2]", "openai-beta"]


def test_one_choice_asked_for_is_not_reported_as_dropped(scripted_model: ScriptedModel) -> None:
    scripted_model.script("allow-n1", [{"content": "ok"}])
    status, _, [record] = asyncio.run(_send(scripted_model.url, CHAT, chat("allow-n1", n=1)))
    assert status == 200 and "n" not in scripted_model.requests[0]["body"]
    assert "dropped" not in record


@pytest.mark.parametrize(("path", "content"), [
    (CHAT, [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "https://attacker.example/x?d=1"}}]),
    (MESSAGES, [{"type": "image", "source": {"type": "url", "url": "https://attacker.example/x.png"}}]),
    (MESSAGES, [{"type": "tool_result", "tool_use_id": "t1", "content": [
        {"type": "document", "source": {"type": "url", "url": "https://attacker.example/doc.pdf"}}]}]),
])
def test_content_the_provider_would_fetch_by_url_is_refused(scripted_model: ScriptedModel, path: str,
                                                            content: list[dict]) -> None:
    body = {"model": "x", "max_tokens": 100, "messages": [{"role": "user", "content": content}]}
    with MessagesModel() as messages_upstream:
        upstream = scripted_model.url if path == CHAT else messages_upstream.url
        status, usage, [record] = asyncio.run(_send(upstream, path, body))
        assert messages_upstream.requests == []
    assert status == 400 and "by URL" in record["error"] and "inline" in record["error"]
    assert usage["requests"] == 1
    assert scripted_model.requests == []


def test_an_inline_image_goes_through(scripted_model: ScriptedModel) -> None:
    scripted_model.script("allow-inline", [{"content": "a cat"}])
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    body = chat("allow-inline")
    body["messages"][0]["content"] = [{"type": "text", "text": "task allow-inline"}, image]
    status, _, _ = asyncio.run(_send(scripted_model.url, CHAT, body))
    assert status == 200
    assert scripted_model.requests[0]["body"]["messages"][0]["content"][1] == image
