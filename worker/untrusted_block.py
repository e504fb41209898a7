"""Text strangers wrote, placed in a model prompt between delimiters that mark it untrusted.

Every prompt Mull builds (the agent's task, the plan, the critique) fences what others wrote the same way:
``<<<BEGIN UNTRUSTED KIND>>>`` … ``<<<END UNTRUSTED KIND>>>``. Inside a block, anything that looks like any
such delimiter, of any kind, spacing or case, is replaced, so the text can neither close its block early
and speak as Mull nor open a block of another kind. A replacement is never longer than what it replaces,
so neutralising never makes a priced prompt section grow.
"""

from __future__ import annotations

import re

_DELIMITER = re.compile(r"<*[ \t]*\b(BEGIN|END)[ \t]+UNTRUSTED\b(?:[ \t]+[A-Z]+){0,2}[ \t]*>*", re.IGNORECASE)


def begin(kind: str) -> str:
    return f"<<<BEGIN UNTRUSTED {kind}>>>"


def end(kind: str) -> str:
    return f"<<<END UNTRUSTED {kind}>>>"


def neutralise(text: str) -> str:
    """``text`` with every delimiter-like run replaced by ``[begin of text]`` or ``[end of text]``."""
    return _DELIMITER.sub(lambda match: f"[{match.group(1).lower()} of text]", text)


def block(kind: str, text: str) -> str:
    """``text`` neutralised and fenced as untrusted ``kind`` (ISSUE, PULL REQUEST, DIFF…)."""
    return f"{begin(kind)}\n{neutralise(text)}\n{end(kind)}"
