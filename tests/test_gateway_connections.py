"""A sandbox cannot hoard the gateway's connections: idle ones make room, silent and half-sent ones are closed.

Every run's sandbox shares the socket, and each connection costs the worker a file descriptor. These tests
use a low connection limit and short deadlines passed to the gateway; the defaults are the same rules, larger.
"""

from __future__ import annotations

import asyncio

from doubles.byte_stream import ByteStream
from doubles.gateway_rig import CHAT, agent_client, chat, raw_connection, running_gateway
from doubles.model_server import ScriptedModel

from worker.gateway.connections import MAX_HEAD


async def _closed(readers: list[asyncio.StreamReader], seconds: float) -> int:
    """How many of ``readers`` the gateway closes within ``seconds``."""
    reads = [asyncio.ensure_future(reader.read()) for reader in readers]
    done, pending = await asyncio.wait(reads, timeout=seconds)
    for read in pending:
        read.cancel()
    return len(done)


def test_idle_connections_beyond_the_limit_make_room_for_a_runs_request(scripted_model: ScriptedModel) -> None:
    scripted_model.script("conn-legit", [{"content": "served"}])

    async def scenario() -> tuple[int, int, int]:
        async with running_gateway(scripted_model.url, shutdown_seconds=0, max_connections=4,
                                   headers_seconds=60) as gateway, gateway.run("victim", "m", 10, 10_000) as grant:
            hoard = [await raw_connection(gateway) for _ in range(30)]
            async with agent_client(gateway, grant.token) as client:
                models = (await client.get("/v1/models")).status_code
                answer = (await client.post(CHAT, json=chat("conn-legit"))).status_code
            closed = await _closed([reader for reader, _ in hoard], 0.5)
            for _, writer in hoard:
                writer.close()
            return models, answer, closed

    models, answer, closed = asyncio.run(scenario())
    assert (models, answer) == (200, 200)
    assert closed >= 30 - 4, f"the gateway still holds {30 - closed} idle connections past its limit of 4"


def test_when_every_connection_is_busy_a_newcomer_gets_503() -> None:
    chunks = [b'data: {"choices": []}\n\n', b"data: [DONE]\n\n"]

    async def scenario(upstream: ByteStream) -> int:
        async with running_gateway(upstream.url, shutdown_seconds=0, max_connections=2) as gateway, \
                gateway.run("r1", "m", 10, 10_000) as one, gateway.run("r2", "m", 10, 10_000) as two, \
                agent_client(gateway, one.token) as first, agent_client(gateway, two.token) as second, \
                agent_client(gateway, one.token) as third, \
                first.stream("POST", CHAT, json=chat("x", stream=True)) as a, \
                second.stream("POST", CHAT, json=chat("x", stream=True)) as b:
            streams = [a.aiter_raw(), b.aiter_raw()]
            for raw in streams:
                await asyncio.wait_for(anext(raw), 5)  # both connections have a request in progress
            status = (await third.get("/v1/models")).status_code
            upstream.release(1)
            for raw in streams:
                assert [chunk async for chunk in raw]
            return status

    with ByteStream(chunks, held=True) as upstream:
        assert asyncio.run(scenario(upstream)) == 503


def test_a_connection_that_sends_no_whole_request_in_time_is_closed(scripted_model: ScriptedModel) -> None:
    async def scenario() -> tuple[int, int]:
        async with running_gateway(scripted_model.url, shutdown_seconds=0, headers_seconds=0.2) as gateway:
            silent, _ = await raw_connection(gateway)
            trickle, writer = await raw_connection(gateway)
            writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n")
            closed = await _closed([silent, trickle], 5)
            async with gateway.run("r1", "m", 10, 10_000) as grant, agent_client(gateway, grant.token) as client:
                await client.get("/v1/models")
                await asyncio.sleep(0.4)  # the client's pooled connection is closed as idle; it opens another
                return closed, (await client.get("/v1/models")).status_code

    assert asyncio.run(scenario()) == (2, 200)


def test_headers_without_end_are_cut_off(scripted_model: ScriptedModel) -> None:
    async def scenario() -> bytes:
        async with running_gateway(scripted_model.url, shutdown_seconds=0) as gateway:
            reader, writer = await raw_connection(gateway)
            writer.write(b"GET /v1/models HTTP/1.1\r\nHost: gateway\r\nX-Pad: ")
            for _ in range(2 * MAX_HEAD // 4096):
                writer.write(b"a" * 4096)
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            return answer

    assert asyncio.run(scenario()).startswith(b"HTTP/1.1 400 ")
