"""What the gateway needs to know about one model API: where it goes, how it authenticates, where usage is.

The gateway speaks two protocols (OpenAI chat completions, Anthropic messages) with one forwarding path;
everything that differs between them is behind ``Dialect``, so adding a protocol is one module.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Tokens:
    """Tokens one model request used, as the upstream reported them or as the gateway estimated them."""

    input: int
    output: int
    estimated: bool = False

    @property
    def total(self) -> int:
        return self.input + self.output


@dataclass(frozen=True)
class Prepared:
    """A request as it goes upstream: the body built from the agent's, and what the gateway left out."""

    body: dict[str, object]
    drop_usage: bool = False  # usage was asked for on the agent's behalf: the reader drops what it did not ask for
    dropped: list[str] = field(default_factory=list)  # names of the agent's fields and tools not forwarded
    refusal: str | None = None  # why the request cannot go at all (the agent is told), or None


def estimate(chars: int) -> int:
    """Roughly four characters a token, rounded up: used only when an upstream reports no usage."""
    return (chars + 3) // 4


def cap(body: dict[str, object], names: Collection[str], limit: int) -> bool:
    """Lower each integer field of ``names`` over ``limit`` (an answer's length) to it; True if any was."""
    capped = False
    for name in names:
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > limit:
            body[name], capped = limit, True
    return capped


def text_of(content: object) -> str:
    """The text of a message's content: a string, or a list of parts with ``text``."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) and isinstance(p.get("text"), str) else ""
                       for p in content)
    return ""


def count(value: object) -> int:
    """An integer usage field, or 0 when the upstream sent something else."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


class StreamReader(Protocol):
    """Follows one streamed answer event by event: usage, the text and tool calls for the transcript."""

    def read(self, data: object) -> bool:
        """Take one event's JSON; True if the event must not reach the agent (it asked for no such event)."""
        ...

    def usage(self) -> Tokens | None: ...

    def reply(self) -> dict[str, object]: ...

    def chars(self) -> int:
        """Characters of the answer so far, to estimate its tokens when the upstream sends no usage."""
        ...


class Dialect(Protocol):
    name: str  # "openai" or "anthropic", in the transcript and the logs
    upstream_path: str  # appended to the upstream base URL
    default_headers: dict[str, str]  # sent upstream unless the agent sent its own value

    def auth_headers(self, api_key: str | None) -> dict[str, str]: ...

    def prepare(self, body: dict[str, object], model: str, remaining: int) -> Prepared:
        """The upstream body: the agent's allowed fields and client tools, the run's model, usage asked for,
        and an answer no longer than ``remaining`` tokens (what is left of the run's budget)."""
        ...

    def usage(self, body: object) -> Tokens | None: ...

    def prompt(self, body: dict[str, object]) -> dict[str, object]:
        """What the transcript keeps of a request: its messages (and system prompt)."""
        ...

    def prompt_chars(self, body: dict[str, object]) -> int: ...

    def reply_chars(self, body: object) -> int: ...

    def stream_reader(self, drop_usage: bool) -> StreamReader: ...
