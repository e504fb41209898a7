"""The model runner against the scripted OpenAI-compatible server, on both routes: through Mull's gateway
(its unix socket, the run's token) and direct (the endpoint's own key).

Every ending is a value whose one-line detail carries no credential, whichever way it arrived.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from doubles.gateway_rig import UPSTREAM_KEY, model_access
from doubles.model_server import ScriptedModel
from pydantic import BaseModel
from pydantic_ai import Agent, RunContext, ToolOutput

from worker.agent.model_run import Ended, Finished, ModelRoute, OutputRejected, RunLimits, RunOutcome, Usage, run_agent
from worker.agent.model_text import ERROR_CHARS

DIRECT_KEY = "llm-key-0123456789abcdef"  # no credential shape: only redaction by value can catch it
LIMITS = RunLimits(seconds=20, steps=10, tokens=100_000)
ROUTES = ["gateway", "direct"]


class Answer(BaseModel):
    value: int


def agent(tool_retries: int = 1) -> Agent[None, Answer]:
    answering: Agent[None, Answer] = Agent(output_type=ToolOutput(Answer, name="answer", max_retries=1),
                                           retries=tool_retries)

    @answering.tool_plain
    def look(path: str) -> str:
        """Look at a path."""
        return f"seen {path}"

    return answering


@asynccontextmanager
async def route(kind: str, url: str, steps: int = 40, tokens: int = 400_000) -> AsyncIterator[ModelRoute]:
    if kind == "direct":
        yield ModelRoute.direct(url, DIRECT_KEY, "scripted")
        return
    async with model_access(url, "scripted", steps, tokens) as access:
        yield ModelRoute.through_gateway(access, url)


def run(kind: str, url: str, key: str, limits: RunLimits = LIMITS, runner: Agent[None, Answer] | None = None,
        **gateway_budget: int) -> RunOutcome[Answer]:
    async def go() -> RunOutcome[Answer]:
        async with route(kind, url, **gateway_budget) as chosen:
            return await run_agent(runner or agent(), f"Answer {key}.", deps=None, route=chosen, limits=limits)

    return asyncio.run(go())


def ended(outcome: RunOutcome[Any]) -> Ended:
    assert isinstance(outcome, Ended), outcome
    assert "\n" not in outcome.detail and len(outcome.detail) <= ERROR_CHARS + 1
    return outcome


def answer(value: int) -> dict[str, Any]:
    return {"tool_calls": [{"name": "answer", "arguments": {"value": value}}]}


def call_look() -> dict[str, Any]:
    return {"tool_calls": [{"name": "look", "arguments": {"path": "a.py"}}]}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed when the block ends: nothing listens there


@pytest.mark.parametrize("kind", ROUTES)
def test_finished_with_output_and_usage(scripted_model: ScriptedModel, kind: str) -> None:
    scripted_model.script(f"fin-{kind}", [call_look(), answer(42)])
    outcome = run(kind, scripted_model.url, f"fin-{kind}")
    assert isinstance(outcome, Finished) and outcome.output == Answer(value=42)
    assert outcome.usage.steps == 2 and outcome.usage.tokens > 0
    requests = scripted_model.requests_for(f"fin-{kind}")
    assert [r["turn"] for r in requests] == [0, 1]
    # through the gateway the endpoint sees the real key only the gateway holds; direct, the route's key
    expected = UPSTREAM_KEY if kind == "gateway" else DIRECT_KEY
    assert {r["authorization"] for r in requests} == {f"Bearer {expected}"}


@pytest.mark.parametrize("kind", ROUTES)
def test_wall_clock_ends_a_run_whose_model_is_slow(scripted_model: ScriptedModel, kind: str) -> None:
    scripted_model.script(f"slow-{kind}", [{"sleep": 5, **answer(1)}])
    started = time.monotonic()
    outcome = ended(run(kind, scripted_model.url, f"slow-{kind}", RunLimits(seconds=0.5, steps=10)))
    assert time.monotonic() - started < 3
    assert (outcome.reason, outcome.detail) == ("timeout", "wall clock (0.5 s)")
    assert outcome.usage.steps == 0


@pytest.mark.parametrize("kind", ROUTES)
def test_steps_limit_ends_a_run_that_never_answers(scripted_model: ScriptedModel, kind: str) -> None:
    scripted_model.script(f"loop-{kind}", [call_look()])
    outcome = ended(run(kind, scripted_model.url, f"loop-{kind}", RunLimits(seconds=20, steps=3)))
    assert (outcome.reason, outcome.detail) == ("usage_limit", "steps (3)")
    assert outcome.usage.steps == 3 and len(scripted_model.requests_for(f"loop-{kind}")) == 3


def test_tokens_limit_is_checked_after_each_answer(scripted_model: ScriptedModel) -> None:
    scripted_model.script("tokens", [{**call_look(), "usage": {"prompt_tokens": 400, "completion_tokens": 100,
                                                          "total_tokens": 500}}])
    outcome = ended(run("direct", scripted_model.url, "tokens", RunLimits(seconds=20, steps=50, tokens=1200)))
    assert (outcome.reason, outcome.detail) == ("usage_limit", "tokens (1200)")
    # It overshoots by one answer; input and output are counted apart, for what they cost.
    assert outcome.usage == Usage(steps=3, tokens=1500, input_tokens=1200, output_tokens=300)


def test_a_budget_the_gateway_counts_out_first_is_named_as_the_gateway_words_it(scripted_model: ScriptedModel) -> None:
    scripted_model.script("gw-budget", [call_look()])
    outcome = ended(run("gateway", scripted_model.url, "gw-budget", RunLimits(seconds=20, steps=10), steps=2))
    assert (outcome.reason, outcome.detail) == ("usage_limit", "steps (2)")
    assert len(scripted_model.requests_for("gw-budget")) == 2  # the third request never left the gateway


@pytest.mark.parametrize("kind", ROUTES)
def test_an_endpoint_echoing_the_authorization_header_leaks_no_credential(scripted_model: ScriptedModel,
                                                                          kind: str) -> None:
    scripted_model.script(f"echo-{kind}", [{"echo_headers": True, "status": 400}])

    async def go() -> tuple[Ended, str]:
        async with route(kind, scripted_model.url) as chosen:
            outcome = await run_agent(agent(), f"Answer echo-{kind}.", deps=None, route=chosen, limits=LIMITS)
            token = chosen.access.token if chosen.access is not None else DIRECT_KEY
            return ended(outcome), token

    outcome, credential = asyncio.run(go())
    assert outcome.reason == "model_error"
    assert outcome.detail.startswith("model endpoint returned HTTP 400: bad headers: ")
    assert '"authorization": "[redacted]"' in outcome.detail
    for secret in (credential, UPSTREAM_KEY, DIRECT_KEY):
        assert secret not in outcome.detail
    assert outcome.usage.steps == 0


def test_a_key_where_the_line_is_cut_is_redacted_before_the_cut(scripted_model: ScriptedModel) -> None:
    prefix = "model endpoint returned HTTP 500: "
    padding = "x" * (ERROR_CHARS - len(prefix) - 10)  # the key starts 10 characters before the cut
    scripted_model.script("cut", [{"status": 500, "body": {"error": {"message": f"{padding} {DIRECT_KEY}"}}}])
    outcome = ended(run("direct", scripted_model.url, "cut"))
    assert outcome.detail.startswith(prefix + padding + " [redacted]"[:9])
    assert DIRECT_KEY[:8] not in outcome.detail


@pytest.mark.parametrize("kind", ROUTES)
def test_an_endpoint_that_is_down_is_named(kind: str) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    outcome = ended(run(kind, url, "down"))
    assert outcome.reason == "model_error"
    assert outcome.detail.startswith(f"model endpoint unreachable: {url} (")
    assert outcome.usage.steps == 0


def test_a_dead_gateway_is_mull_s_bug_not_the_endpoint_s(scripted_model: ScriptedModel) -> None:
    async def go() -> Ended:
        async with model_access(scripted_model.url) as access:
            gone = ModelRoute.through_gateway(type(access)(access.socket.with_name("nobody.sock"), access.grant),
                                              scripted_model.url)
            return ended(await run_agent(agent(), "Answer.", deps=None, route=gone, limits=LIMITS))

    outcome = asyncio.run(go())
    assert outcome.reason == "model_error" and outcome.detail.startswith("model gateway unreachable (")
    assert outcome.detail.endswith("this is a bug in Mull, please report it")


@pytest.mark.parametrize("kind", ROUTES)
def test_output_that_is_not_json_twice_is_invalid_output(scripted_model: ScriptedModel, kind: str) -> None:
    scripted_model.script(f"garbage-{kind}", [{"raw_arguments": {"name": "answer", "arguments": "not json{"}}])
    outcome = ended(run(kind, scripted_model.url, f"garbage-{kind}"))
    assert outcome.reason == "invalid_output" and "Invalid JSON" in outcome.detail
    assert outcome.usage.steps == 2  # the model was shown what was wrong once


def test_output_that_fails_validation_twice_names_the_field(scripted_model: ScriptedModel) -> None:
    scripted_model.script("wrong-type", [{"tool_calls": [{"name": "answer", "arguments": {"value": "many"}}]}])
    outcome = ended(run("direct", scripted_model.url, "wrong-type"))
    assert (outcome.reason, outcome.detail) == (
        "invalid_output", "value: Input should be a valid integer, unable to parse string as an integer")


def test_a_tool_called_with_malformed_arguments_until_its_retries_run_out_is_bad_output(
        scripted_model: ScriptedModel) -> None:
    scripted_model.script("bad-tool", [{"raw_arguments": {"name": "look", "arguments": "{path"}}])
    outcome = ended(run("direct", scripted_model.url, "bad-tool", runner=agent(tool_retries=2)))
    assert (outcome.reason, outcome.detail) == ("bad_output", "Tool 'look' exceeded max retries count of 2")
    assert outcome.usage.steps == 3


def test_an_output_validator_may_reject_the_output_for_good(scripted_model: ScriptedModel) -> None:
    scripted_model.script("rejected", [answer(7)])
    picky = agent()

    @picky.output_validator
    def odd_only(ctx: RunContext[None], output: Answer) -> Answer:
        if output.value % 2:
            raise OutputRejected(f"value {output.value} is odd (secret {DIRECT_KEY})")
        return output

    outcome = ended(run("direct", scripted_model.url, "rejected", runner=picky))
    assert (outcome.reason, outcome.detail) == ("invalid_output", "value 7 is odd (secret [redacted])")


def test_a_bug_in_a_tool_is_raised_not_reported_as_the_model_s_fault(scripted_model: ScriptedModel) -> None:
    scripted_model.script("bug", [call_look(), answer(1)])
    buggy: Agent[None, Answer] = Agent(output_type=ToolOutput(Answer, name="answer"))

    @buggy.tool_plain
    def look(path: str) -> str:
        """Look at a path."""
        raise KeyError(path)

    with pytest.raises(KeyError, match="a.py"):
        run("direct", scripted_model.url, "bug", runner=buggy)


@pytest.mark.parametrize("kind", ROUTES)
def test_the_route_closes_its_http_client(scripted_model: ScriptedModel, kind: str) -> None:
    async def go() -> bool:
        async with route(kind, scripted_model.url) as chosen, chosen.open() as model:
            assert not model.client.is_closed()
        return model.client.is_closed()

    assert asyncio.run(go())


@pytest.mark.parametrize("make, says", [
    (lambda: RunLimits(seconds=0, steps=1), "wall clock above 0 seconds (got 0)"),
    (lambda: RunLimits(seconds=1, steps=0), "at least 1 step (got 0)"),
    (lambda: RunLimits(seconds=1, steps=1, tokens=0), "token limit must be at least 1, or None for none (got 0)"),
    (lambda: ModelRoute.direct(" ", "k", "m"), "set MULL_LLM_BASE_URL"),
    (lambda: ModelRoute.direct("http://127.0.0.1:1/v1", "k", ""), "set MULL_LLM_MODEL"),
])
def test_bad_limits_and_routes_are_refused_saying_what_to_fix(make: Callable[[], object], says: str) -> None:
    with pytest.raises(ValueError, match=says.replace("(", r"\(").replace(")", r"\)")):
        make()


def test_the_route_s_key_never_shows_in_its_repr() -> None:
    assert DIRECT_KEY not in repr(ModelRoute.direct("http://127.0.0.1:1/v1", DIRECT_KEY, "m"))

