"""A critique from free text: a CLI critic's stdout, or a model that answered in text instead of the tool.

JSON (bare, or in a ```json fence, possibly after log lines) is validated against the schema; anything
else is read as a Markdown review whose first two lines become the summary and the rest the details, with
verdict ``pass`` unless a line says ``Verdict: fix``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from worker.critique.schema import Critique, explain

DETAILS_LIMIT = 20_000  # characters of a Markdown review kept for the comment
DEFAULT_EFFORT = 3
_FENCE = re.compile(r"```(?:json|JSON)?[ \t]*\n(\{.*?\})\s*\n```", re.DOTALL)
_VERDICT = re.compile(r"^[\s>*_`#-]*verdict[\s*_`]*:[\s*_`]*(fix|pass)\b", re.IGNORECASE | re.MULTILINE)
_EFFORT = re.compile(r"^[\s>*_`#-]*(?:review\s+)?effort[^:\n]*:[\s*_`]*([1-5])\b", re.IGNORECASE | re.MULTILINE)


class UnusableOutput(ValueError):
    """The text meant to be JSON but is not a valid critique; the message is written for the model."""


def from_text(text: str) -> Critique:
    """JSON when the text holds some, else Markdown. Raises UnusableOutput for empty text or bad JSON."""
    if not text.strip():
        raise UnusableOutput("the answer is empty; give the critique as the JSON object described")
    data = find_json(text)
    if data is not None:
        return from_json(data)
    if _looks_like_json(text):
        raise UnusableOutput("the answer is not valid JSON; give one JSON object with the fields described")
    return from_markdown(text)


def find_json(text: str) -> dict[str, Any] | None:
    """The last JSON object in a fence, else the last one starting a line: CLIs print logs before it."""
    for candidate in reversed(_FENCE.findall(text)):
        data = _loads(candidate)
        if data is not None:
            return data
    decoder = json.JSONDecoder()
    starts = [match.start() for match in re.finditer(r"(?m)^[ \t]*\{", text)]
    for start in reversed(starts):
        try:
            data, _ = decoder.raw_decode(text[start:].lstrip())
        except ValueError:
            continue
        if isinstance(data, dict):
            return data
    return None


def from_json(data: dict[str, Any]) -> Critique:
    try:
        return Critique.model_validate(data)
    except ValidationError as exc:
        raise UnusableOutput(f"the JSON is not a valid critique: {explain(exc)}") from None


def from_markdown(text: str) -> Critique:
    lines = text.strip().splitlines()
    summary: list[str] = []
    rest_at = len(lines)
    for index, line in enumerate(lines):
        plain = line.strip().lstrip("#").strip()
        if plain and not _VERDICT.match(line) and not _EFFORT.match(line):
            summary.append(plain)
            if len(summary) == 2:
                rest_at = index + 1
                break
    details = "\n".join(lines[rest_at:]).strip()
    if len(details) > DETAILS_LIMIT:
        details = details[:DETAILS_LIMIT] + f"\n\n[truncated: {len(details) - DETAILS_LIMIT} more characters]"
    verdicts = {match.lower() for match in _VERDICT.findall(text)}
    effort = _EFFORT.search(text)
    return Critique(summary="\n".join(summary) or "The critic gave no summary.",
                    effort=int(effort.group(1)) if effort else DEFAULT_EFFORT, risks=[], security=[], findings=[],
                    tests="unknown", tests_note="", verdict="fix" if "fix" in verdicts else "pass",
                    details=details)


def _loads(text: str) -> dict[str, Any] | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _looks_like_json(text: str) -> bool:
    stripped = text.strip()
    return stripped.startswith(("{", "[")) or "```json" in stripped.lower()
