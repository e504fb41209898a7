"""Monthly budgets of installations, from the operator's settings only (never from a repository's file).

``MULL_INSTALLATION_BUDGET`` is the default for every installation; ``MULL_INSTALLATION_BUDGETS`` overrides it
for some, by installation id or account login: ``acme=$200, 12345=5000000 tokens, big-corp=none``. A budget is
tokens (``5000000 tokens`` or a bare number) or US dollars (``$50`` or ``50 usd``, counted with
``MULL_MODEL_PRICES``); ``none`` means no budget.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

EXAMPLE = "acme=$200, 12345=5000000 tokens, big-corp=none"
_TOKENS = re.compile(r"(\d[\d_]*)\s*(?:tokens?)?", re.IGNORECASE)
_DOLLARS = re.compile(r"\$\s*(\d+(?:\.\d+)?)|(\d+(?:\.\d+)?)\s*(?:usd|dollars?)", re.IGNORECASE)


class BadBudget(ValueError):
    """Names the entry that cannot be read and shows correct ones."""


@dataclass(frozen=True)
class Budget:
    """One month's allowance: ``tokens`` (in + out) or ``dollars``; neither means no limit."""

    tokens: int | None = None
    dollars: float | None = None

    @property
    def limited(self) -> bool:
        return self.tokens is not None or self.dollars is not None

    def describe(self) -> str:
        if self.tokens is not None:
            return f"{self.tokens:,} tokens"
        if self.dollars is not None:
            return f"${self.dollars:,.2f}"
        return "no budget"


NONE = Budget()


def parse_budget(text: str) -> Budget:
    """One budget: ``5000000 tokens``, ``5000000``, ``$50``, ``50 usd``, ``none`` or empty (no budget)."""
    given = text.strip()
    if given.lower() in ("", "none", "unlimited"):
        return NONE
    tokens = _TOKENS.fullmatch(given)
    if tokens:
        return Budget(tokens=int(tokens.group(1).replace("_", "")))
    dollars = _DOLLARS.fullmatch(given)
    if dollars:
        amount = float(dollars.group(1) or dollars.group(2))
        if math.isfinite(amount):
            return Budget(dollars=amount)
    raise BadBudget(f"'{given[:40]}' is not a budget: write tokens (5000000 tokens), US dollars ($50) or none")


def parse_overrides(text: str) -> dict[str, Budget]:
    """``installation=budget`` entries separated by commas; keys are installation ids or account logins
    (lower case)."""
    found: dict[str, Budget] = {}
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        who, eq, given = entry.partition("=")
        if not eq or not who.strip():
            raise BadBudget(f"entry '{entry[:60]}' is not installation=budget; write e.g. {EXAMPLE}")
        try:
            found[who.strip().lower()] = parse_budget(given)
        except BadBudget as exc:
            raise BadBudget(f"entry '{entry[:60]}': {exc}") from None
    return found


def budget_of(default: Budget, overrides: dict[str, Budget], installation_id: int, account: str | None) -> Budget:
    """The installation's budget: its id's override, else its account's, else the default."""
    if str(installation_id) in overrides:
        return overrides[str(installation_id)]
    if account and account.lower() in overrides:
        return overrides[account.lower()]
    return default
