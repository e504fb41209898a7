"""What of an agent's request may reach the provider: named body fields, client tools, harmless betas.

The sandbox has no network; the gateway is its only way out. But a provider is more than a model: given the
right body field or beta header it fetches URLs (``web_fetch``, ``web_search``, ``mcp_servers`` pointing
anywhere), runs code next to the network (``code_execution``), keeps data (``store``, ``metadata``) or
multiplies the bill (``n``, ``service_tier``). Each of those would hand the agent a way around the sandbox
or the budget, and providers add more every month. So the upstream body is built from an allow-list of
fields per protocol, tools are kept only when the agent itself runs them, and beta headers only from a short
list known to change nothing but the format or price of an answer. Whatever is left out is named (field
names only, never values) for the log and the transcript: an agent that fails without a field is debuggable.

Content that makes the provider fetch a URL (an image or document given by URL rather than inline) is the
same hole through the conversation itself; the gateway refuses such a request with a message that says how
to send the content instead, since quietly dropping part of a message would change what the model reads.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping

# Anthropic betas the gateway passes on. Each only changes how an answer is encoded, cached or how long it may
# be; none gives the model a tool, a URL, a file store or a container:
SAFE_ANTHROPIC_BETAS = frozenset({
    "prompt-caching-2024-07-31",  # cache_control on prompt blocks: cheaper repeated prefixes
    "extended-cache-ttl-2025-04-11",  # a one-hour cache lifetime instead of five minutes: price only
    "fine-grained-tool-streaming-2025-05-14",  # tool input streamed without buffering: same content, sooner
    "interleaved-thinking-2025-05-14",  # thinking between the agent's own tool calls
    "token-efficient-tools-2025-02-19",  # a denser encoding of the agent's own tool calls
    "context-1m-2025-08-07",  # a longer context window: held by the run's token budget like any other
    "output-128k-2025-02-19",  # longer answers: held by max_tokens, which the gateway caps at the budget
})
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


def keep_fields(body: Mapping[str, object], allowed: Collection[str]) -> tuple[dict[str, object], list[str]]:
    """``body``'s allowed fields, and the names of the others (sorted)."""
    kept = {k: v for k, v in body.items() if k in allowed}
    return kept, sorted(k for k in body if k not in allowed)


def keep_tools(body: dict[str, object], client_tool: Callable[[dict], bool],
               needs_tools: Collection[str]) -> list[str]:
    """Drop from ``body["tools"]`` every tool the provider would run itself; names of what went, by index.

    With no tool left, ``tools`` goes too, with the fields that only make sense beside it (``needs_tools``):
    providers refuse an empty tool list and a tool choice without tools.
    """
    tools = body.get("tools")
    if not isinstance(tools, list):
        return []
    kept = [t for t in tools if isinstance(t, dict) and client_tool(t)]
    dropped = [f"tools[{i}]" for i, t in enumerate(tools) if not (isinstance(t, dict) and client_tool(t))]
    if kept:
        body["tools"] = kept
        return dropped
    del body["tools"]
    gone = [name for name in needs_tools if body.pop(name, None) is not None]
    return dropped + gone


def safe_betas(value: str) -> tuple[str, list[str]]:
    """The allowed betas of an ``anthropic-beta`` header value (comma-separated), and the names of the rest."""
    names = [n.strip() for n in value.split(",") if n.strip()]
    kept = [n for n in names if n in SAFE_ANTHROPIC_BETAS]
    dropped = [n if _NAME.fullmatch(n) else "(unreadable)" for n in names if n not in SAFE_ANTHROPIC_BETAS]
    return ",".join(kept), dropped


def _fetched(part: object) -> bool:
    if not isinstance(part, dict):
        return False
    source, image = part.get("source"), part.get("image_url")
    if isinstance(source, dict) and source.get("type") == "url":
        return True
    url = image.get("url") if isinstance(image, dict) else image
    return isinstance(url, str) and not url.lstrip()[:5].lower().startswith("data:")


def remote_source(messages: object) -> str | None:
    """Where in a conversation content is given by URL for the provider to fetch, if anywhere.

    OpenAI: a part ``{"type": "image_url", "image_url": {"url": "https://..."}}`` (``data:`` URLs are inline
    and fine); Anthropic: a block with ``"source": {"type": "url", ...}`` (images, documents), also inside a
    ``tool_result``. Only where content goes is looked at: a message's parts, and the parts of those.
    """
    if not isinstance(messages, list):
        return None
    for i, message in enumerate(messages):
        parts = message.get("content") if isinstance(message, dict) else None
        for j, part in enumerate(parts if isinstance(parts, list) else ()):
            if _fetched(part):
                return f"messages[{i}].content[{j}]"
            inner = part.get("content") if isinstance(part, dict) else None
            for k, piece in enumerate(inner if isinstance(inner, list) else ()):
                if _fetched(piece):
                    return f"messages[{i}].content[{j}].content[{k}]"
    return None
