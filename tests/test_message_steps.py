"""An in-process run's steps (the plan) from pydantic-ai's messages: the prompt, model turns with their tokens,
tool calls with what came back, and the corrections the model was asked for."""

from __future__ import annotations

import json

from pydantic_ai.messages import (
    ModelRequest,
    ModelResponse,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.usage import RequestUsage

from worker.sessions.message_steps import steps


def test_prompt_turns_calls_results_and_corrections_in_order() -> None:
    messages = [
        ModelRequest(parts=[SystemPromptPart("Plan only."), UserPromptPart("Plan issue #3")]),
        ModelResponse(parts=[TextPart("A first try."), ToolCallPart("submit_plan", {"approach": ""}, "c1")],
                      usage=RequestUsage(input_tokens=50, output_tokens=9)),
        ModelRequest(parts=[ToolReturnPart("submit_plan", "approach: too short", "c1", outcome="retried")]),
        ModelResponse(parts=[ToolCallPart("submit_plan", '{"approach": "Change answer()"}', "c2")],
                      usage=RequestUsage(input_tokens=70, output_tokens=12)),
        ModelRequest(parts=[ToolReturnPart("submit_plan", "Final result processed.", "c2")]),
    ]
    found = steps(messages)
    assert [s.kind for s in found] == ["note", "model", "tool", "model", "tool"]
    assert found[0].text == "Plan only.\n\nPlan issue #3"
    assert found[1].text == "A first try." and (found[1].input_tokens, found[1].output_tokens) == (50, 9)
    assert found[2].title == "submit_plan" and "too short" in found[2].text and found[2].text.startswith("Asked")
    assert json.loads(found[4].detail) == {"approach": "Change answer()"} and found[4].text == "Final result processed."


def test_a_run_that_stopped_mid_call_says_so() -> None:
    found = steps([ModelRequest(parts=[UserPromptPart("go")]),
                   ModelResponse(parts=[ToolCallPart("submit_plan", {}, "c9")])])
    assert found[-1].text.startswith("(no result")
