"""A regular expression chosen by the model, made safe to run inside the worker.

The pattern comes from a model that read untrusted text, and it runs in the worker process beside every
other run. Python's ``re`` holds the GIL for a whole match, so a catastrophic pattern (``(a|a)+$``) freezes
the worker, its event loop and even the run's wall clock. So matching uses the ``regex`` package with
``concurrent=True`` (the GIL is released while it matches) and a ``timeout`` taken from one time budget per
search. ``regex`` expands counted repeats when it compiles, so ``(?:a{1000}){1000}`` would take seconds and
hundreds of megabytes before any timeout could apply: the pattern's length is capped and its expansion is
measured on ``re``'s parse tree, which never expands anything, before ``regex`` sees it.
"""

from __future__ import annotations

import re
import re._constants as sre  # re's parser and its node types: no public API exposes a parse tree
import re._parser as sre_parse
import time
from typing import Any

import regex

MAX_PATTERN_CHARS = 1000
MAX_EXPANSION = 10_000  # atoms a compiled pattern may hold once counted repeats are written out
_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT)


class BadPattern(Exception):
    """The pattern cannot be used; the message says why and what to do instead."""


class TooSlow(Exception):
    """Matching ran past the search's time budget."""


class LinePattern:
    """A compiled pattern searched line by line against a deadline."""

    def __init__(self, pattern: str, seconds: float) -> None:
        self.compiled = _compile(pattern)
        self.deadline = time.monotonic() + seconds

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    def search(self, line: str) -> bool:
        """Whether ``line`` matches; TooSlow once the budget is spent."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TooSlow
        try:
            return self.compiled.search(line, timeout=left, concurrent=True) is not None
        except TimeoutError:
            raise TooSlow from None


def _compile(pattern: str) -> Any:
    if len(pattern) > MAX_PATTERN_CHARS:
        raise BadPattern(f"the pattern is {len(pattern)} characters long, over the limit of {MAX_PATTERN_CHARS}; "
                         "search for a shorter, distinctive part")
    try:
        tree = sre_parse.parse(pattern)
    except re.error as exc:
        raise BadPattern(f"invalid regular expression {pattern!r}: {exc}") from None
    except RecursionError:
        raise BadPattern(f"the pattern {pattern!r} nests groups too deeply; simplify it") from None
    try:
        expansion = _expansion(tree)
    except RecursionError:
        raise BadPattern(f"the pattern {pattern!r} nests groups too deeply; simplify it") from None
    if expansion > MAX_EXPANSION:
        raise BadPattern(f"the pattern {pattern!r} repeats too much ({{n}} counts multiply to over "
                         f"{MAX_EXPANSION}); use smaller counts, or + and * instead")
    try:
        return regex.compile(pattern)
    except regex.error as exc:
        raise BadPattern(f"invalid regular expression {pattern!r}: {exc}") from None


def _expansion(items: Any) -> int:
    """How many atoms the pattern holds once each counted repeat is written out its minimum number of times."""
    total = 0
    for op, arg in items:
        if op in _REPEATS:
            low, _high, body = arg
            total += max(low, 1) * _expansion(body)
        elif op is sre.SUBPATTERN:
            total += _expansion(arg[-1])
        elif op is sre.BRANCH:
            total += sum(_expansion(branch) for branch in arg[1])
        elif op is sre.ATOMIC_GROUP:
            total += _expansion(arg)
        elif op in (sre.ASSERT, sre.ASSERT_NOT):
            total += _expansion(arg[1])
        elif op is sre.GROUPREF_EXISTS:
            total += _expansion(arg[1]) + (_expansion(arg[2]) if arg[2] else 0)
        else:
            total += 1
        if total > MAX_EXPANSION:
            break
    return total
