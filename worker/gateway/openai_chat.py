"""The OpenAI chat completions protocol (``POST /v1/chat/completions``), streamed or not.

Most agents speak it. A streamed answer carries usage only if the request asks for it
(``stream_options.include_usage``), so the gateway always asks; when it asked on the agent's behalf it
drops the extra usage-only chunk again, so the agent receives exactly the stream it requested.

Only the fields a coding agent needs go upstream (see ``allowlist``): not ``web_search_options``, ``store``,
``metadata``, ``service_tier``, audio or predictions; ``n`` never (one choice; named as dropped unless it was 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from worker.gateway.allowlist import keep_fields, keep_tools, remote_source
from worker.gateway.dialect import Prepared, Tokens, cap, count, text_of

ALLOWED_FIELDS = frozenset({
    "model", "messages", "tools", "tool_choice", "parallel_tool_calls", "temperature", "top_p", "max_tokens",
    "max_completion_tokens", "stop", "stream", "stream_options", "response_format", "seed", "presence_penalty",
    "frequency_penalty", "reasoning_effort"})
ANSWER_LIMITS = ("max_tokens", "max_completion_tokens")


def _usage(value: object) -> Tokens | None:
    if not isinstance(value, dict) or not any(k in value for k in ("prompt_tokens", "completion_tokens")):
        return None
    return Tokens(count(value.get("prompt_tokens")), count(value.get("completion_tokens")))


def _message_chars(message: object) -> int:
    if not isinstance(message, dict):
        return 0
    calls = message.get("tool_calls") or []
    functions = [c.get("function") or {} for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []
    return len(text_of(message.get("content"))) + sum(
        len(str(f.get("name") or "")) + len(str(f.get("arguments") or "")) for f in functions if isinstance(f, dict))


@dataclass
class _ToolCall:
    id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass
class OpenAIStreamReader:
    """Rebuilds the streamed message (text, tool calls by index) and keeps the usage chunk."""

    drop_usage: bool
    text: list[str] = field(default_factory=list)
    calls: dict[int, _ToolCall] = field(default_factory=dict)
    finish_reason: str | None = None
    _usage: Tokens | None = None

    def read(self, data: object) -> bool:
        if not isinstance(data, dict):
            return False
        found = _usage(data.get("usage"))
        if found is not None:
            self._usage = found
        choices = data.get("choices")
        if not isinstance(choices, list):
            return False
        for choice in choices:
            if isinstance(choice, dict):
                self._read_choice(choice)
        return self.drop_usage and found is not None and not choices

    def _read_choice(self, choice: dict) -> None:
        if isinstance(choice.get("finish_reason"), str):
            self.finish_reason = choice["finish_reason"]
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return
        if isinstance(delta.get("content"), str):
            self.text.append(delta["content"])
        for call in delta.get("tool_calls") or []:
            if not isinstance(call, dict):
                continue
            index = call.get("index")
            slot = self.calls.setdefault(index if isinstance(index, int) else len(self.calls), _ToolCall())
            slot.id = str(call.get("id") or slot.id)
            function = call.get("function") or {}
            if isinstance(function, dict):
                slot.name = str(function.get("name") or slot.name)
                slot.arguments += str(function.get("arguments") or "")

    def usage(self) -> Tokens | None:
        return self._usage

    def chars(self) -> int:
        return sum(map(len, self.text)) + sum(len(c.name) + len(c.arguments) for c in self.calls.values())

    def reply(self) -> dict[str, object]:
        calls = [{"id": c.id, "name": c.name, "arguments": c.arguments} for _, c in sorted(self.calls.items())]
        return {"text": "".join(self.text), "tool_calls": calls, "finish_reason": self.finish_reason}


class OpenAIChat:
    name = "openai"
    upstream_path = "/chat/completions"
    default_headers: dict[str, str] = {}

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        return {"authorization": f"Bearer {api_key}"} if api_key else {}

    def prepare(self, body: dict[str, object], model: str, remaining: int) -> Prepared:
        source = remote_source(body.get("messages"))
        if source is not None:
            return Prepared({}, refusal=f"{source} is an image given by URL, which the model's provider would "
                            "fetch: send images inline as data: URLs (base64)")
        upstream, dropped = keep_fields(body, ALLOWED_FIELDS)
        if body.get("n", 1) == 1:
            dropped = [name for name in dropped if name != "n"]  # one choice is what the gateway sends anyway
        dropped += keep_tools(upstream, lambda tool: tool.get("type") == "function",
                              ("tool_choice", "parallel_tool_calls"))
        upstream["model"] = model
        cap(upstream, ANSWER_LIMITS, remaining)
        if body.get("stream") is not True:
            return Prepared(upstream, False, dropped)
        options = upstream.get("stream_options")
        options = options if isinstance(options, dict) else {}
        if options.get("include_usage") is True:
            return Prepared(upstream, False, dropped)
        upstream["stream_options"] = {**options, "include_usage": True}
        return Prepared(upstream, True, dropped)

    def usage(self, body: object) -> Tokens | None:
        return _usage(body.get("usage")) if isinstance(body, dict) else None

    def prompt(self, body: dict[str, object]) -> dict[str, object]:
        return {"messages": body.get("messages")}

    def prompt_chars(self, body: dict[str, object]) -> int:
        messages = body.get("messages")
        return sum(_message_chars(m) for m in messages) if isinstance(messages, list) else 0

    def reply_chars(self, body: object) -> int:
        choices = body.get("choices") if isinstance(body, dict) else None
        if not isinstance(choices, list):
            return 0
        return sum(_message_chars(c.get("message")) for c in choices if isinstance(c, dict))

    def stream_reader(self, drop_usage: bool) -> OpenAIStreamReader:
        return OpenAIStreamReader(drop_usage)
