"""A run's steps read from the model gateway's transcript (``worker/gateway/transcript.py``).

Every agent Mull runs, builtin or CLI, reaches its model only through the gateway, so the transcript is the
one record that holds for all of them: each model answer with its tool calls, and, in the next request's
messages, what each tool returned. A tool call whose arguments hold a ``command`` is shown as a command, with
the exit code its result names. The records are the agent's: any field may be missing or of another type.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from bot.session_store import Step

_EXIT = re.compile(r"(?i)(?:exit code|exit status|returncode)\W{0,3}(-?\d{1,3})\b")
_NO_RESULT = "(no result: the run ended before the agent sent it back)"


def steps(records: Iterable[Mapping[str, Any]]) -> list[Step]:
    """The prompt, then each model turn followed by the tool calls it made and what they returned."""
    records = [r for r in records if isinstance(r, Mapping)]
    results = _tool_results(records)
    out: list[Step] = []
    for turn, record in enumerate(records, start=1):
        if turn == 1 and (prompt := _prompt(record)):
            out.append(Step(kind="note", title="Prompt", text=prompt))
        text, calls = _answer(record.get("response"), str(record.get("protocol") or "openai"))
        usage: Mapping[str, Any] = record["usage"] if isinstance(record.get("usage"), Mapping) else {}
        error = str(record.get("error") or record.get("refused") or "")
        status = record.get("status")
        if not error and isinstance(status, int) and status >= 400:
            error = f"HTTP {status}"
        out.append(Step(kind="model", title=f"Model turn {turn}", text=text, error=error,
                        input_tokens=_int(usage.get("input")), output_tokens=_int(usage.get("output")),
                        ms=_ms(record.get("ms"))))
        taken = [_call_step(name, arguments, results.get(call_id, _NO_RESULT) if call_id else _NO_RESULT)
                 for call_id, name, arguments in calls]
        if len(taken) == 1 and turn < len(records):  # the agent's time between this answer and its next request
            taken[0] = replace(taken[0], ms=_between(record, records[turn]))
        out += taken
    return out


def _between(answered: Mapping[str, Any], following: Mapping[str, Any]) -> int | None:
    """Milliseconds from the end of one answer to the next request: what the agent spent on its tool call."""
    try:
        start = datetime.fromisoformat(str(answered.get("time")))
        end = datetime.fromisoformat(str(following.get("time")))
    except ValueError:
        return None
    took = _ms(answered.get("ms"))
    gap = (end - start).total_seconds() * 1000 - (took or 0)
    return round(gap) if took is not None and 0 <= gap < 86_400_000 else None


def _ms(value: Any) -> int | None:
    return round(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 else None


def _call_step(name: str, arguments: Any, result: str) -> Step:
    parsed = arguments
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments)
        except ValueError:
            parsed = arguments
    command = parsed.get("command") if isinstance(parsed, Mapping) else None
    if isinstance(command, list):
        command = " ".join(str(part) for part in command)
    if isinstance(command, str):
        found = _EXIT.search(result[:300])
        return Step(kind="command", title=name, detail=command, text=result,
                    exit_code=int(found.group(1)) if found else None)
    shown = parsed if isinstance(parsed, str) else json.dumps(parsed, indent=2, ensure_ascii=False)
    return Step(kind="tool", title=name, detail=shown, text=result)


def _prompt(record: Mapping[str, Any]) -> str:
    request = record.get("request")
    if not isinstance(request, Mapping):
        return ""
    parts = [_text(request.get("system"))] if request.get("system") else []
    for message in request.get("messages") or []:
        if isinstance(message, Mapping) and message.get("role") in ("system", "user"):
            parts.append(_text(message.get("content")))
    return "\n\n".join(p for p in parts if p)


def _tool_results(records: list[Mapping[str, Any]]) -> dict[str, str]:
    """Tool call id -> what the agent sent back for it, from every request's messages."""
    found: dict[str, str] = {}
    for record in records:
        request = record.get("request")
        messages = request.get("messages") if isinstance(request, Mapping) else None
        for message in messages if isinstance(messages, list) else []:
            if not isinstance(message, Mapping):
                continue
            if message.get("role") == "tool" and message.get("tool_call_id"):  # OpenAI
                found[str(message["tool_call_id"])] = _text(message.get("content"))
            content = message.get("content")
            for block in content if isinstance(content, list) else []:  # Anthropic
                if isinstance(block, Mapping) and block.get("type") == "tool_result" and block.get("tool_use_id"):
                    found[str(block["tool_use_id"])] = _text(block.get("content"))
    return found


def _answer(response: Any, protocol: str) -> tuple[str, list[tuple[str | None, str, Any]]]:
    """(text, [(call id, tool name, arguments)]) of one answer, streamed or not, in either protocol."""
    if not isinstance(response, Mapping):
        return "", []
    if "tool_calls" in response and "choices" not in response:  # a stream, as the gateway recorded it
        calls = [(_str(c.get("id")), str(c.get("name") or "?"), c.get("arguments"))
                 for c in response.get("tool_calls") or [] if isinstance(c, Mapping)]
        return _text(response.get("text")), calls
    if protocol == "anthropic" or isinstance(response.get("content"), list):
        blocks = [b for b in response.get("content") or [] if isinstance(b, Mapping)]
        text = "\n".join(str(b.get("text") or "") for b in blocks if b.get("type") == "text")
        calls = [(_str(b.get("id")), str(b.get("name") or "?"), b.get("input")) for b in blocks
                 if b.get("type") == "tool_use"]
        return text, calls
    choices = response.get("choices")
    message = choices[0].get("message") if isinstance(choices, list) and choices and \
        isinstance(choices[0], Mapping) else None
    if not isinstance(message, Mapping):
        return "", []
    calls = []
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, Mapping) else None
        if isinstance(function, Mapping):
            calls.append((_str(call.get("id")), str(function.get("name") or "?"), function.get("arguments")))
    return _text(message.get("content")), calls


def _text(content: Any) -> str:
    """Message content as text: a string, or the text of its parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_text(part.get("text") if isinstance(part, Mapping) and "text" in part else
                               part.get("content") if isinstance(part, Mapping) else part) for part in content)
    return json.dumps(content, ensure_ascii=False) if isinstance(content, (dict, int, float, bool)) else str(content)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return str(value) if value is not None else None
