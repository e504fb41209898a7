"""Mull's hidden markers: written in one format, read back only where Mull wrote them.

A marker (``<!-- mull:status {...} -->``) keeps Mull's state on GitHub, so GitHub stays the source of truth
when Redis is lost. Mull's comments also quote text it does not control (an agent's summary, a model's
error, a user's note), so a marker found anywhere in a body proves nothing: an agent could forge a waiting
plan that a later ``/mull go`` runs as trusted. So a marker counts only when the comment's author is Mull's
bot and the marker is a whole line at the place Mull puts it (the first or the last line), in exactly the
format ``dump`` writes; and text Mull quotes passes ``neutralise``, so it can neither open nor close an
HTML comment.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

Place = Literal["first", "last"]
_KIND = re.compile(r"[a-z]+")


def dump(kind: str, data: Any = None) -> str:
    """The marker line for ``kind``; ``data`` as one line of JSON in which ``<`` and ``>`` are escaped."""
    if not _KIND.fullmatch(kind):
        raise ValueError(f"marker kind must be lowercase letters, not {kind!r}")
    if data is None:
        return f"<!-- mull:{kind} -->"
    text = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c").replace(">", "\\u003e")
    return f"<!-- mull:{kind} {text} -->"


def load(kind: str, body: str | None, place: Place) -> Any | None:
    """The JSON data of ``kind``'s marker when it is the body's ``place`` line, else None (damaged is None too)."""
    lines = (body or "").strip().splitlines()
    if not lines:
        return None
    line = lines[0] if place == "first" else lines[-1]
    prefix, suffix = f"<!-- mull:{kind} ", " -->"
    if not (line.startswith(prefix) and line.endswith(suffix)):
        return None
    data = line[len(prefix):-len(suffix)]
    if "<" in data or ">" in data:  # dump escapes both: anything else was not written by Mull
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None


def has(kind: str, body: str | None, place: Place) -> bool:
    """Whether ``kind``'s marker (with or without data) is the body's ``place`` line."""
    lines = (body or "").strip().splitlines()
    if not lines:
        return False
    line = lines[0] if place == "first" else lines[-1]
    return line == dump(kind) or load(kind, body, place) is not None


def by_mull(comment: dict[str, Any], bot_login: str) -> bool:
    """Whether Mull's bot wrote ``comment`` (an issue comment, issue or pull request as the REST API gives it)."""
    return bool(bot_login) and (comment.get("user") or {}).get("login") == bot_login


def read(kind: str, comment: dict[str, Any], bot_login: str, place: Place) -> Any | None:
    """The marker data of a comment Mull's bot wrote, or None."""
    return load(kind, comment.get("body"), place) if by_mull(comment, bot_login) else None


def neutralise(text: str) -> str:
    """Quoted text that cannot open or close an HTML comment (and so cannot hide or fake a marker)."""
    return text.replace("<!--", "&lt;!--").replace("--!>", "--!&gt;").replace("-->", "--&gt;")
