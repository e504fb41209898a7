"""A run's steps from pydantic-ai's messages, for runs Mull makes in process without the gateway (the plan).

Such a run's record is the conversation pydantic-ai kept: the prompt, each model response (its words, tool
calls and tokens), and each request after it (what the tools returned, or what the model was told to correct).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryPromptPart,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

from bot.session_store import Step

_NO_RESULT = "(no result: the run ended here)"


def steps(messages: Sequence[ModelMessage]) -> list[Step]:
    results: dict[str, str] = {}
    for message in messages:
        for part in message.parts if isinstance(message, ModelRequest) else ():
            if isinstance(part, ToolReturnPart):
                retried = getattr(part, "outcome", None) == "retried"
                results[part.tool_call_id] = ("Asked to correct: " if retried else "") + part.model_response_str()
            elif isinstance(part, RetryPromptPart) and part.tool_call_id:
                results[part.tool_call_id] = "Asked to correct: " + part.model_response()
    out: list[Step] = []
    turn = 0
    for message in messages:
        if isinstance(message, ModelRequest) and not out:
            prompt = [p.content for p in message.parts if isinstance(p, (SystemPromptPart, UserPromptPart))]
            text = "\n\n".join(p if isinstance(p, str) else json.dumps(p, default=str) for p in prompt)
            if text:
                out.append(Step(kind="note", title="Prompt", text=text))
        if not isinstance(message, ModelResponse):
            continue
        turn += 1
        out.append(Step(kind="model", title=f"Model turn {turn}",
                        text="\n".join(p.content for p in message.parts if isinstance(p, TextPart)),
                        input_tokens=message.usage.input_tokens, output_tokens=message.usage.output_tokens))
        out += [Step(kind="tool", title=part.tool_name, detail=part.args_as_json_str(),
                     text=results.get(part.tool_call_id, _NO_RESULT))
                for part in message.parts if isinstance(part, ToolCallPart)]
    return out
