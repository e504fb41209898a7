"""Only a live run's token opens the model gateway; nothing else reaches the upstream.

The agent holds a per-run token instead of the API key. These tests play the agent trying without a token,
with a made-up one, with its own token after the run ended, and with another run's; and ask for routes the
gateway does not serve.
"""

from __future__ import annotations

import asyncio

import pytest
from doubles.gateway_rig import CHAT, agent_client, chat, running_gateway
from doubles.model_server import ScriptedModel


def test_a_live_runs_token_is_let_through_as_bearer_or_x_api_key(scripted_model: ScriptedModel) -> None:
    scripted_model.script("auth-ok", [{"content": "fine"}])

    async def scenario() -> tuple[int, int]:
        async with running_gateway(scripted_model.url) as gateway, gateway.run("r1", "m", 10, 10_000) as grant:
            async with agent_client(gateway, grant.token) as bearer, \
                    agent_client(gateway, **{"x-api-key": grant.token}) as api_key:
                return ((await bearer.post(CHAT, json=chat("auth-ok"))).status_code,
                        (await api_key.post(CHAT, json=chat("auth-ok"))).status_code)

    assert asyncio.run(scenario()) == (200, 200)
    assert len(scripted_model.requests) == 2


@pytest.mark.parametrize("credentials", [
    {},
    {"authorization": "Bearer not-a-run-token"},
    {"x-api-key": "not-a-run-token"},
    {"authorization": "Basic dXNlcjpwYXNz"},
    {"authorization": "Bearer"},
])
def test_no_token_or_a_made_up_one_is_refused_with_401(scripted_model: ScriptedModel,
                                                       credentials: dict[str, str]) -> None:
    scripted_model.script("auth-no", [{"content": "should not be reached"}])

    async def scenario() -> tuple[int, dict]:
        async with running_gateway(scripted_model.url) as gateway, gateway.run("r1", "m", 10, 10_000):
            async with agent_client(gateway, **credentials) as client:
                response = await client.post(CHAT, json=chat("auth-no"))
                return response.status_code, response.json()

    status, body = asyncio.run(scenario())
    assert status == 401
    assert body["error"]["type"] == "authentication_error"
    assert "token" in body["error"]["message"]
    assert scripted_model.requests == []


def test_a_token_dies_with_its_run_and_does_not_open_another_run(scripted_model: ScriptedModel) -> None:
    scripted_model.script("auth-closed", [{"content": "fine"}])

    async def scenario() -> list[int]:
        async with running_gateway(scripted_model.url) as gateway:
            first = gateway.open_run("run-a", "m", 10, 10_000)
            second = gateway.open_run("run-b", "m", 10, 10_000)
            async with agent_client(gateway, first.token) as old, agent_client(gateway, second.token) as live:
                before = (await old.post(CHAT, json=chat("auth-closed"))).status_code
                gateway.close_run("run-a")
                after = (await old.post(CHAT, json=chat("auth-closed"))).status_code
                models_after = (await old.get("/v1/models")).status_code
                other = (await live.post(CHAT, json=chat("auth-closed"))).status_code
                gateway.close_run("run-b")
                other_after = (await live.post(CHAT, json=chat("auth-closed"))).status_code
                return [before, after, models_after, other, other_after]

    assert asyncio.run(scenario()) == [200, 401, 401, 200, 401]
    assert len(scripted_model.requests) == 2


def test_models_lists_the_runs_model_only_without_asking_the_upstream(scripted_model: ScriptedModel) -> None:
    async def scenario() -> dict:
        async with running_gateway(scripted_model.url) as gateway, \
                gateway.run("r1", "qwen3-coder", 10, 10_000) as grant, agent_client(gateway, grant.token) as client:
            response = await client.get("/v1/models")
            assert response.status_code == 200
            return response.json()

    body = asyncio.run(scenario())
    assert [m["id"] for m in body["data"]] == ["qwen3-coder"]
    assert scripted_model.requests == []


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/v1/completions"), ("GET", "/v1/chat/completions"), ("POST", "/v1/embeddings"),
    ("GET", "/"), ("POST", "/_scripts"), ("GET", "/v1/models/other"), ("POST", "/v1/../v1/chat"),
])
def test_other_routes_are_404_with_a_json_error(scripted_model: ScriptedModel, method: str, path: str) -> None:
    async def scenario() -> tuple[int, dict]:
        async with running_gateway(scripted_model.url) as gateway, gateway.run("r1", "m", 10, 10_000) as grant, \
                agent_client(gateway, grant.token) as client:
            response = await client.request(method, path, json=chat("x"))
            return response.status_code, response.json()

    status, body = asyncio.run(scenario())
    assert status == 404
    assert "/v1/chat/completions" in body["error"]["message"]
    assert scripted_model.requests == []
