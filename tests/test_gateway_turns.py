"""A run's model requests are served one at a time, so its token budget holds however many it sends at once.

Tokens are known only when an answer ends. Forty requests in flight side by side would each pass the budget
check against the same count; one at a time, a run overshoots by at most the answer that crossed the budget,
and each answer is capped at what the budget has left.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from doubles.byte_stream import ByteStream
from doubles.gateway_rig import CHAT, agent_client, chat, running_gateway
from doubles.messages_model import MessagesModel
from doubles.model_server import ScriptedModel

from worker.gateway.turns import MAX_WAITING, Turns, TurnsFull


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def _delta(text: str) -> bytes:
    return _event({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}}]})


STREAM = [_delta("Hel"), _delta("lo") + _event({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}})
          + b"data: [DONE]\n\n"]


def test_concurrent_requests_cannot_spend_more_than_one_answer_past_the_token_budget(
        scripted_model: ScriptedModel) -> None:
    scripted_model.script("turns-budget", [{"content": "hi", "sleep": 0.05,
                                            "usage": {"prompt_tokens": 500, "completion_tokens": 100}}])

    async def scenario() -> tuple[list[int], int]:
        async with running_gateway(scripted_model.url, shutdown_seconds=0) as gateway, \
                gateway.run("r1", "m", 40, 1000) as grant, agent_client(gateway, grant.token) as client:
            answers = await asyncio.gather(*[client.post(CHAT, json=chat("turns-budget", max_tokens=5000))
                                             for _ in range(8)])
            return [a.status_code for a in answers], grant.usage.total_tokens

    statuses, total = asyncio.run(scenario())
    assert sorted(statuses) == [200, 200] + [403] * 6
    assert total == 1200  # the budget, plus the one answer that crossed it
    first, second = scripted_model.requests
    assert second["at"] - first["at"] >= 0.05, "the second request went upstream before the first was answered"
    assert [first["body"]["max_tokens"], second["body"]["max_tokens"]] == [1000, 400]  # what the budget had left


def test_turns_are_taken_in_arrival_order_and_a_full_queue_is_refused() -> None:
    async def scenario() -> list[str]:
        turns, order = Turns(max_waiting=2), []
        release = await turns.take()

        async def wait(name: str) -> None:
            done = await turns.take()
            order.append(name)
            done()

        waiting = [asyncio.create_task(wait(name)) for name in ("a", "b")]
        await asyncio.sleep(0)
        with pytest.raises(TurnsFull):
            await turns.take()
        release()
        release()  # a second release is a no-op, not someone else's turn
        await asyncio.gather(*waiting)
        (await turns.take())()
        return order

    assert asyncio.run(scenario()) == ["a", "b"]


def test_a_run_with_a_full_queue_is_refused_at_once_and_the_queue_still_drains() -> None:
    async def scenario(upstream: ByteStream) -> tuple[int, str, list[int], int]:
        async with running_gateway(upstream.url, shutdown_seconds=0) as gateway, \
                gateway.run("r1", "m", 40, 100_000) as grant, agent_client(gateway, grant.token) as client:
            async with client.stream("POST", CHAT, json=chat("x", stream=True)) as first:
                raw = first.aiter_raw()
                await asyncio.wait_for(anext(raw), 5)  # the first request has the turn, mid-answer
                later = [asyncio.create_task(client.post(CHAT, json=chat("x"))) for _ in range(MAX_WAITING + 1)]
                done, _ = await asyncio.wait(later, timeout=5, return_when=asyncio.FIRST_COMPLETED)
                [refused] = [task.result() for task in done]
                upstream.release(1)
                assert [chunk async for chunk in raw]
            answers = await asyncio.gather(*later)
            return (refused.status_code, refused.json()["error"]["message"],
                    sorted(a.status_code for a in answers), grant.usage.requests)

    with ByteStream(STREAM, held=True) as upstream:
        status, message, statuses, requests = asyncio.run(scenario(upstream))
    assert status == 429 and "one at a time" in message
    assert statuses == [200] * MAX_WAITING + [429]
    assert requests == MAX_WAITING + 2  # the refusal counts as a step too


def test_a_stream_the_agent_abandons_is_counted_and_gives_its_turn_back() -> None:
    async def scenario(upstream: ByteStream) -> tuple[int, dict, list[dict]]:
        async with running_gateway(upstream.url, shutdown_seconds=0) as gateway, \
                gateway.run("r1", "m", 40, 100_000) as grant:
            async with agent_client(gateway, grant.token) as client, \
                    client.stream("POST", CHAT, json=chat("x" * 400, stream=True)) as first:
                await asyncio.wait_for(anext(first.aiter_raw()), 5)
            for _ in range(500):  # the gateway notices the agent left; the upstream has not finished
                if grant.transcript.read_text():
                    break
                await asyncio.sleep(0.01)
            upstream.release(1)
            async with agent_client(gateway, grant.token) as client:
                second = await asyncio.wait_for(client.post(CHAT, json=chat("y")), 5)
            records = [json.loads(line) for line in grant.transcript.read_text().splitlines()]
            return second.status_code, vars(grant.usage), records

    with ByteStream(STREAM, held=True) as upstream:
        status, usage, records = asyncio.run(scenario(upstream))
    assert status == 200
    abandoned = records[0]
    assert "stopped reading" in abandoned["error"]
    assert abandoned["usage"]["estimated"] is True and abandoned["usage"]["input"] >= 100
    assert usage["input_tokens"] == abandoned["usage"]["input"] + 5


@pytest.mark.parametrize(("budget", "thinking"), [(2400, {"type": "enabled", "budget_tokens": 2399}), (1000, None)])
def test_an_anthropic_answer_is_capped_at_what_the_budget_has_left(budget: int, thinking: dict | None) -> None:
    body = {"model": "m", "max_tokens": 8000, "thinking": {"type": "enabled", "budget_tokens": 4000},
            "messages": [{"role": "user", "content": "hi"}]}

    async def scenario(upstream: MessagesModel) -> int:
        async with running_gateway(upstream.url, shutdown_seconds=0) as gateway, \
                gateway.run("r1", "m", 40, budget) as grant, agent_client(gateway, grant.token) as client:
            return (await client.post("/v1/messages", json=body)).status_code

    with MessagesModel() as upstream:
        assert asyncio.run(scenario(upstream)) == 200
        [seen] = upstream.requests
    assert seen["body"]["max_tokens"] == budget
    assert seen["body"].get("thinking") == thinking
