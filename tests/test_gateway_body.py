"""A request's body costs the run a step before the gateway reads it, and is read within limits.

So junk is never free: a run that sends bad bodies in a loop ends at its step budget; a body is never read
when the budget is spent; a stalled body is given up; a large one is parsed off the event loop; and what
the gateway refused leaves a short note in the transcript, not a copy.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import orjson
import pytest
from doubles.gateway_rig import CHAT, agent_client, chat, raw_connection, request_head, running_gateway
from doubles.model_server import ScriptedModel

from worker.gateway import body as body_module
from worker.gateway.body import MAX_BODY, PARSE_ON_LOOP


def test_a_loop_of_junk_bodies_ends_at_the_step_budget(scripted_model: ScriptedModel) -> None:
    junk = b"[" + b"{}," * (PARSE_ON_LOOP // 3) + b"{}]"  # valid JSON, not an object, and sizeable

    async def scenario() -> tuple[list[int], dict[str, Any], list[dict], int]:
        async with running_gateway(scripted_model.url, shutdown_seconds=0) as gateway, \
                gateway.run("r1", "m", 3, 10_000) as grant, agent_client(gateway, grant.token) as client:
            statuses = [(await client.post(CHAT, content=junk)).status_code for _ in range(3)]
            statuses.append((await client.post(CHAT, content=b"{not json")).status_code)
            size = grant.transcript.stat().st_size
            records = [json.loads(line) for line in grant.transcript.read_text().splitlines()]
            return statuses, vars(grant.usage), records, size

    statuses, usage, records, size = asyncio.run(scenario())
    assert statuses == [400, 400, 400, 403]
    assert usage["requests"] == 3 and usage["tripped"] == "steps (3)"
    assert [r["request"] for r in records] == [None] * 4
    assert "not an object" in records[0]["error"] and records[3]["refused"] == "steps (3)"
    assert size < 2000, "the transcript holds more than a note of what was refused"
    assert scripted_model.requests == []


def test_a_spent_budget_is_refused_without_reading_the_body(scripted_model: ScriptedModel) -> None:
    scripted_model.script("body-spent", [{"content": "the one step"}])

    async def scenario() -> bytes:
        async with running_gateway(scripted_model.url, shutdown_seconds=0) as gateway, \
                gateway.run("r1", "m", 1, 10_000) as grant:
            async with agent_client(gateway, grant.token) as client:
                assert (await client.post(CHAT, json=chat("body-spent"))).status_code == 200
            reader, writer = await raw_connection(gateway)
            writer.write(request_head(grant.token, MAX_BODY))  # announces 4 MiB, sends none of it
            answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            writer.close()
            return answer

    assert asyncio.run(scenario()).startswith(b"HTTP/1.1 403 ")


def test_a_body_that_stalls_is_given_up_and_counted(scripted_model: ScriptedModel) -> None:
    async def scenario() -> tuple[bytes, bytes, int]:
        async with running_gateway(scripted_model.url, shutdown_seconds=0, body_seconds=0.2) as gateway, \
                gateway.run("r1", "m", 10, 10_000) as grant:
            reader, writer = await raw_connection(gateway)
            writer.write(request_head(grant.token, 100) + b'{"model": ')
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            rest = await asyncio.wait_for(reader.read(), 5)  # the gateway closes the connection after it
            writer.close()
            return head, rest, grant.usage.requests

    head, rest, requests = asyncio.run(scenario())
    assert head.startswith(b"HTTP/1.1 408 ") and b"connection: close" in head.lower()
    assert b"did not arrive within 0.2 s" in rest
    assert requests == 1


def test_bodies_are_capped_at_4_mib_and_large_ones_parse_in_a_thread(scripted_model: ScriptedModel,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    scripted_model.script("body-large", [{"content": "read it"}])
    parsed_in_thread: list[int] = []
    original = asyncio.to_thread

    async def to_thread(function: Any, *args: Any) -> Any:
        if function is orjson.loads:
            parsed_in_thread.append(len(args[0]))
        return await original(function, *args)

    monkeypatch.setattr(body_module.asyncio, "to_thread", to_thread)
    small = chat("body-large")
    large = chat("body-large", messages=[{"role": "user", "content": "body-large " + "x" * PARSE_ON_LOOP}])

    async def scenario() -> list[int]:
        async with running_gateway(scripted_model.url, shutdown_seconds=0) as gateway, \
                gateway.run("r1", "m", 10, 10_000_000) as grant, agent_client(gateway, grant.token) as client:
            return [(await client.post(CHAT, json=body)).status_code for body in (small, large)]

    assert MAX_BODY == 4 * 1024 * 1024
    assert asyncio.run(scenario()) == [200, 200]
    assert len(parsed_in_thread) == 1 and parsed_in_thread[0] > PARSE_ON_LOOP
