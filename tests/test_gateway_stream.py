"""Streamed answers go through as they arrive, byte for byte, and are still counted.

``ByteStream`` plays exact bytes in chosen chunks (cut mid-line, ``\\r\\n`` endings, comments) and can hold
each chunk until the test releases it; the scripted model double plays real OpenAI-shaped streams.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from doubles.byte_stream import ByteStream
from doubles.gateway_rig import CHAT, UPSTREAM_KEY, agent_client, chat, running_gateway
from doubles.model_server import ScriptedModel

READ_TIMEOUT = 5.0  # only reached when the gateway holds a chunk back: the failure this file looks for


def _event(data: dict[str, Any], end: bytes = b"\n\n") -> bytes:
    return b"data: " + json.dumps(data).encode() + end


def _delta(text: str) -> dict[str, Any]:
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}}]}


async def _stream(upstream: str, body: dict[str, Any]) -> tuple[bytes, dict[str, Any], list[dict]]:
    """(bytes the agent received, the run's usage, the transcript's records) for one streamed request."""
    async with running_gateway(upstream) as gateway:
        async with gateway.run("r1", "m", 10, 100_000) as grant, agent_client(gateway, grant.token) as client, \
                client.stream("POST", CHAT, json=body) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            received = b"".join([chunk async for chunk in response.aiter_raw()])
        records = [json.loads(line) for line in grant.transcript.read_text().splitlines()]
        return received, vars(grant.usage), records


def test_usage_is_asked_for_counted_and_the_extra_chunk_kept_from_the_agent(scripted_model: ScriptedModel) -> None:
    scripted_model.script("st-usage", [{"content": "streamed words", "usage": {"prompt_tokens": 70,
                                                                              "completion_tokens": 8}}])
    received, usage, _ = asyncio.run(_stream(scripted_model.url, chat("st-usage", stream=True)))
    [seen] = scripted_model.requests
    assert seen["body"]["stream_options"] == {"include_usage": True}
    events = [json.loads(line[6:]) for line in received.decode().splitlines() if line.startswith("data: {")]
    assert all(event["choices"] for event in events), "a usage-only chunk reached an agent that did not ask"
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events) == "streamed words"
    assert received.endswith(b"data: [DONE]\n\n")
    assert (usage["input_tokens"], usage["output_tokens"], usage["estimated"]) == (70, 8, False)


def test_an_agent_that_asks_for_usage_gets_the_usage_chunk(scripted_model: ScriptedModel) -> None:
    scripted_model.script("st-asks", [{"content": "hi", "usage": {"prompt_tokens": 5, "completion_tokens": 1}}])
    body = chat("st-asks", stream=True, stream_options={"include_usage": True})
    received, usage, _ = asyncio.run(_stream(scripted_model.url, body))
    events = [json.loads(line[6:]) for line in received.decode().splitlines() if line.startswith("data: {")]
    assert events[-1]["choices"] == [] and events[-1]["usage"]["prompt_tokens"] == 5
    assert (usage["input_tokens"], usage["output_tokens"]) == (5, 1)


def test_each_chunk_reaches_the_agent_before_the_upstream_sends_the_next() -> None:
    chunks = [_event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]}),
              _event(_delta("lo")),
              _event({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}) + b"data: [DONE]\n\n"]

    async def scenario(upstream: ByteStream) -> tuple[list[bytes], dict[str, Any]]:
        body = chat("x", stream=True, stream_options={"include_usage": True})
        async with running_gateway(upstream.url) as gateway, gateway.run("r1", "m", 10, 1000) as grant, \
                agent_client(gateway, grant.token) as client, client.stream("POST", CHAT, json=body) as response:
            raw = response.aiter_raw()
            got: list[bytes] = []
            for index, chunk in enumerate(chunks):
                if index:
                    upstream.release(index)
                piece = b""
                while len(piece) < len(chunk):
                    piece += await asyncio.wait_for(anext(raw), READ_TIMEOUT)
                if index < len(chunks) - 1:
                    assert not upstream.finished.is_set()
                got.append(piece)
            assert [rest async for rest in raw] == []
            return got, vars(grant.usage)

    with ByteStream(chunks, held=True) as upstream:
        got, usage = asyncio.run(scenario(upstream))
    assert got == chunks
    assert (usage["input_tokens"], usage["output_tokens"], usage["estimated"]) == (5, 2, False)


def test_odd_framing_passes_unchanged_and_is_still_read() -> None:
    whole = (b": keep-alive comment\r\n\r\n"
             + _event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]}, b"\r\n\r\n")
             + b"event: chunk\n" + _event(_delta("lo"))
             + _event({"choices": [{"index": 0, "delta": {"tool_calls": [
                 {"index": 0, "id": "call_1", "function": {"name": "edit", "arguments": '{"pa'}}]}}]})
             + _event({"choices": [{"index": 0, "delta": {"tool_calls": [
                 {"index": 0, "function": {"arguments": 'th": "a.py"}'}}]}, "finish_reason": "tool_calls"}]})
             + _event({"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 3}})
             + b"data: [DONE]\n\n")
    chunks = [whole[i:i + 13] for i in range(0, len(whole), 13)]  # cuts through lines, events and "\r\n"
    body = chat("x", stream=True, stream_options={"include_usage": True})
    with ByteStream(chunks) as upstream:
        received, usage, [record] = asyncio.run(_stream(upstream.url, body))
    assert received == whole
    assert (usage["input_tokens"], usage["output_tokens"], usage["estimated"]) == (11, 3, False)
    assert record["response"] == {"text": "Hello", "finish_reason": "tool_calls", "tool_calls": [
        {"id": "call_1", "name": "edit", "arguments": '{"path": "a.py"}'}]}


def test_a_stream_without_usage_is_estimated_and_marked_so() -> None:
    whole = _event(_delta("abcdefgh")) + b"data: [DONE]\n\n"
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "x" * 40}]}
    with ByteStream([whole]) as upstream:
        received, usage, [record] = asyncio.run(_stream(upstream.url, body))
    assert received == whole
    assert (usage["input_tokens"], usage["output_tokens"], usage["estimated"]) == (10, 2, True)
    assert record["usage"] == {"input": 10, "output": 2, "estimated": True}


def test_a_streamed_echo_of_the_key_is_scrubbed(scripted_model: ScriptedModel) -> None:
    scripted_model.script("st-echo", [{"echo_headers": True}])
    received, _, _ = asyncio.run(_stream(scripted_model.url, chat("st-echo", stream=True)))
    assert b"[redacted]" in received
    assert UPSTREAM_KEY.encode() not in received
