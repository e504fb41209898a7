"""What a ``/mull`` command is about and what acting on it came to: the types every verb's handler shares."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Outcome:
    ok: bool
    reply: str | None = None


@dataclass(frozen=True)
class Target:
    """What a comment is about: an issue, or a pull request (and the issue behind a Mull PR)."""

    number: int
    is_pull: bool
    issue: int | None  # the issue Mull works on: the issue itself, or the one a Mull PR fixes (None for others)


__all__ = ["Outcome", "Target"]
