"""The Anthropic messages protocol (``POST /v1/messages``), for CLI agents that only speak it.

It authenticates with ``x-api-key`` and reports usage as ``input_tokens`` / ``output_tokens`` (plus prompt
cache reads and writes, which count as input). A streamed answer gives the input side in ``message_start``
and the running output count in each ``message_delta``; streams always carry usage, so nothing is added.

Only the fields a coding agent needs go upstream (see ``allowlist``): not ``mcp_servers``, ``container``,
``metadata`` or ``service_tier``, and only tools the agent runs itself (no ``type``, or ``custom``), never
the provider's server tools (web search and fetch, code execution, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from worker.gateway.allowlist import keep_fields, keep_tools, remote_source
from worker.gateway.dialect import Prepared, Tokens, cap, count, text_of

API_VERSION = "2023-06-01"  # sent when the agent names none; the upstream refuses requests without it
ALLOWED_FIELDS = frozenset({
    "model", "messages", "system", "max_tokens", "tools", "tool_choice", "temperature", "top_p", "top_k",
    "stop_sequences", "stream", "thinking"})
MIN_THINKING = 1024  # the smallest thinking budget the API accepts; it must also stay under max_tokens
_INPUT_FIELDS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def _input(usage: dict) -> int:
    return sum(count(usage.get(name)) for name in _INPUT_FIELDS)


def _usage(value: object) -> Tokens | None:
    if not isinstance(value, dict) or not any(k in value for k in (*_INPUT_FIELDS, "output_tokens")):
        return None
    return Tokens(_input(value), count(value.get("output_tokens")))


def _block_chars(block: object) -> int:
    if not isinstance(block, dict):
        return 0
    if block.get("type") == "tool_use":
        return len(str(block.get("name") or "")) + len(str(block.get("input") or ""))
    return len(text_of([block]))


def _content_chars(content: object) -> int:
    if isinstance(content, str):
        return len(content)
    return sum(_block_chars(b) for b in content) if isinstance(content, list) else 0


@dataclass
class _Block:
    type: str = "text"
    text: str = ""
    id: str = ""
    name: str = ""


@dataclass
class AnthropicStreamReader:
    """Rebuilds the streamed content blocks and follows usage across ``message_start``/``message_delta``."""

    blocks: dict[int, _Block] = field(default_factory=dict)
    stop_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None

    def read(self, data: object) -> bool:
        if not isinstance(data, dict):
            return False
        kind = data.get("type")
        if kind == "message_start" and isinstance(data.get("message"), dict):
            self._read_usage(data["message"].get("usage"))
        elif kind == "message_delta":
            self._read_usage(data.get("usage"))
            delta = data.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
                self.stop_reason = delta["stop_reason"]
        elif kind == "content_block_start" and isinstance(data.get("content_block"), dict):
            start = data["content_block"]
            self.blocks[count(data.get("index"))] = _Block(
                str(start.get("type") or "text"), str(start.get("text") or ""), str(start.get("id") or ""),
                str(start.get("name") or ""))
        elif kind == "content_block_delta" and isinstance(data.get("delta"), dict):
            delta = data["delta"]
            piece = delta.get("text", delta.get("partial_json", delta.get("thinking", "")))
            self.blocks.setdefault(count(data.get("index")), _Block()).text += str(piece or "")
        return False

    def _read_usage(self, usage: object) -> None:
        if not isinstance(usage, dict):
            return
        if any(k in usage for k in _INPUT_FIELDS) and _input(usage):
            self.input_tokens = _input(usage)
        if "output_tokens" in usage:
            self.output_tokens = count(usage.get("output_tokens"))

    def usage(self) -> Tokens | None:
        if self.input_tokens is None and self.output_tokens is None:
            return None
        return Tokens(self.input_tokens or 0, self.output_tokens or 0)

    def chars(self) -> int:
        return sum(len(b.text) + len(b.name) for b in self.blocks.values())

    def reply(self) -> dict[str, object]:
        blocks = [b for _, b in sorted(self.blocks.items())]
        calls = [{"id": b.id, "name": b.name, "arguments": b.text} for b in blocks if b.type == "tool_use"]
        text = "".join(b.text for b in blocks if b.type == "text")
        return {"text": text, "tool_calls": calls, "finish_reason": self.stop_reason}


def _fit_thinking(body: dict[str, object]) -> None:
    """Keep a thinking budget below a capped ``max_tokens`` (the API refuses it otherwise)."""
    thinking, limit = body.get("thinking"), body.get("max_tokens")
    if not isinstance(thinking, dict) or not isinstance(limit, int):
        return
    budget = thinking.get("budget_tokens")
    if isinstance(budget, int) and budget >= limit:
        if limit > MIN_THINKING:
            body["thinking"] = {**thinking, "budget_tokens": limit - 1}
        else:
            del body["thinking"]


class AnthropicMessages:
    name = "anthropic"
    upstream_path = "/messages"
    default_headers = {"anthropic-version": API_VERSION}

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        return {"x-api-key": api_key} if api_key else {}

    def prepare(self, body: dict[str, object], model: str, remaining: int) -> Prepared:
        source = remote_source(body.get("messages"))
        if source is not None:
            return Prepared({}, refusal=f"{source} is given by URL, which the model's provider would fetch: "
                            "send images and documents inline (source type base64 or text)")
        upstream, dropped = keep_fields(body, ALLOWED_FIELDS)
        dropped += keep_tools(upstream, lambda tool: tool.get("type", "custom") == "custom", ("tool_choice",))
        upstream["model"] = model
        if cap(upstream, ("max_tokens",), remaining):
            _fit_thinking(upstream)
        return Prepared(upstream, False, dropped)

    def usage(self, body: object) -> Tokens | None:
        return _usage(body.get("usage")) if isinstance(body, dict) else None

    def prompt(self, body: dict[str, object]) -> dict[str, object]:
        return {"system": body.get("system"), "messages": body.get("messages")}

    def prompt_chars(self, body: dict[str, object]) -> int:
        messages = body.get("messages")
        chars = sum(_content_chars(m.get("content")) for m in messages if isinstance(m, dict)) \
            if isinstance(messages, list) else 0
        return chars + _content_chars(body.get("system"))

    def reply_chars(self, body: object) -> int:
        return _content_chars(body.get("content")) if isinstance(body, dict) else 0

    def stream_reader(self, drop_usage: bool) -> AnthropicStreamReader:
        return AnthropicStreamReader()
