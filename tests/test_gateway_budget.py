"""Budgets hold at the gateway, for any agent: once steps or tokens are spent, requests are refused.

A refusal is a 403 (clients retry a 429), says the budget is spent and the agent must stop, records which
budget tripped in the words the pull request uses, and sets the event the runner waits on.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest
from doubles.gateway_rig import CHAT, agent_client, chat, running_gateway
from doubles.model_server import ScriptedModel

from worker.gateway import BASE_URL


async def _requests(upstream: str, body: dict[str, Any], count: int, steps: int,
                    tokens: int) -> tuple[list[tuple[int, dict]], dict[str, Any], list[bool], list[dict]]:
    """Statuses and bodies of ``count`` requests, the final usage, whether the event was set after each, and
    the transcript."""
    async with running_gateway(upstream) as gateway, gateway.run("budget-run", "m", steps, tokens) as grant, \
            agent_client(gateway, grant.token) as client:
        answers, events = [], []
        for _ in range(count):
            response = await client.post(CHAT, json=body)
            answers.append((response.status_code, response.json()))
            events.append(grant.out_of_budget.is_set())
        records = [json.loads(line) for line in grant.transcript.read_text().splitlines()]
        return answers, vars(grant.usage), events, records


def test_the_step_budget_refuses_the_request_after_the_last_step(scripted_model: ScriptedModel) -> None:
    scripted_model.script("budget-steps", [{"content": "working"}])
    answers, usage, events, records = asyncio.run(
        _requests(scripted_model.url, chat("budget-steps"), count=4, steps=2, tokens=1_000_000))
    assert [status for status, _ in answers] == [200, 200, 403, 403]
    error = answers[2][1]["error"]
    assert error["type"] == "budget_exhausted"
    assert "steps (2) budget is spent" in error["message"] and "stop" in error["message"]
    assert usage["tripped"] == "steps (2)" and usage["requests"] == 2
    assert events == [False, False, True, True]
    assert len(scripted_model.requests) == 2
    assert [r.get("refused") for r in records] == [None, None, "steps (2)", "steps (2)"]
    assert records[2]["status"] == 403


def test_the_token_budget_refuses_once_the_total_reaches_it(scripted_model: ScriptedModel) -> None:
    scripted_model.script("budget-tokens", [{"content": "big", "usage": {"prompt_tokens": 80,
                                                                         "completion_tokens": 30}}])
    answers, usage, events, records = asyncio.run(
        _requests(scripted_model.url, chat("budget-tokens"), count=2, steps=40, tokens=100))
    assert [status for status, _ in answers] == [200, 403]
    assert "tokens (100) budget is spent" in answers[1][1]["error"]["message"]
    assert usage["tripped"] == "tokens (100)" and usage["input_tokens"] + usage["output_tokens"] == 110
    assert events == [False, True]
    assert records[-1]["refused"] == "tokens (100)"
    assert len(scripted_model.requests) == 1


def test_the_openai_sdk_over_the_in_process_client_stops_at_the_refusal(scripted_model: ScriptedModel) -> None:
    scripted_model.script("budget-sdk", [{"content": "one step"}])

    async def scenario() -> tuple[str | None, int, dict[str, Any]]:
        async with running_gateway(scripted_model.url) as gateway, gateway.run("sdk", "m", 1, 10_000) as grant, \
                gateway.client(grant) as http:
            sdk = openai.AsyncOpenAI(base_url=BASE_URL, api_key=grant.token, http_client=http, max_retries=3)
            messages: Any = chat("budget-sdk")["messages"]
            first = await sdk.chat.completions.create(model="ignored", messages=messages)
            with pytest.raises(openai.PermissionDeniedError):
                await sdk.chat.completions.create(model="ignored", messages=messages)
            refusals = sum(1 for line in grant.transcript.read_text().splitlines() if '"refused"' in line)
            return first.choices[0].message.content, refusals, vars(grant.usage)

    content, refusals, usage = asyncio.run(scenario())
    assert content == "one step"
    assert refusals == 1, "the SDK retried the refusal"
    assert usage["tripped"] == "steps (1)"
