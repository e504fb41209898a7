"""Installations' monthly budgets: whether new runs may start, and what people are told while they wait.

The operator sets them (``MULL_INSTALLATION_BUDGET`` and ``MULL_INSTALLATION_BUDGETS``); a repository's file
cannot. Once an installation's month has spent its budget, queued runs keep their place in line but do not
start (``worker.backlog.jobs.start_runs``): their status comments say why and the person behind each gets one
"needs you" ping. The sweep starts them again in the next month, or as soon as a raised budget is read at
start-up. Critiques and revisions wait as well (``worker/jobs/budget_hold.py``). A run that starts gets at
most what the month has left: when that runs out it stops after the model answer that crossed it, and keeps its
work like any run whose budget ran out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot import keys
from bot.budgets import Budget
from bot.prices import Price
from bot.settings import MullSettings
from worker.ops import spend
from worker.ops.redis_reply import reply


@dataclass(frozen=True)
class BudgetState:
    """An installation's budget against what its month has spent."""

    budget: Budget
    spent: spend.Spend
    month: str

    @property
    def exhausted(self) -> bool:
        if self.budget.tokens is not None:
            return self.spent.tokens >= self.budget.tokens
        if self.budget.dollars is not None:
            return self.spent.cost_micro >= round(self.budget.dollars * spend.MICRO)
        return False

    def tokens_left(self, price_list: Mapping[str, Price], model: str) -> int | None:
        """Tokens of ``model`` the month can still pay for; None when nothing bounds them (no budget, or a money
        budget and a model without a price). Money is turned into tokens at the model's dearer rate."""
        if self.budget.tokens is not None:
            return max(self.budget.tokens - self.spent.tokens, 0)
        price = price_list.get(model)
        if self.budget.dollars is None or price is None or max(price.input, price.output) <= 0:
            return None
        left = round(self.budget.dollars * spend.MICRO) - self.spent.cost_micro
        return max(int(left / max(price.input, price.output)), 0)  # micro-dollars at dollars per million tokens

    def tripped(self) -> str:
        """How a run stopped by what the month had left says which budget ran out."""
        return f"installation's monthly ({self.budget.describe()})"

    def waiting_line(self) -> str:
        """The status comment's line for a run that waits for the budget."""
        return (f"**Queue:** waiting for the budget: this installation's model budget for {self.month} "
                f"({self.budget.describe()}) is spent ({self.spent.describe()}). The run starts next month, "
                "or as soon as the operator raises the budget.")

    def held_news(self, what: str) -> str:
        """The status comment's news line for a revision or critique that waits for the budget."""
        return (f"**{what} waits for the budget:** this installation's model budget for {self.month} "
                f"({self.budget.describe()}) is spent ({self.spent.describe()}). It runs next month, or as soon as "
                "the operator raises the budget.")

    def ping(self) -> str:
        """The "needs you" detail; it starts with the month, so each month's hold pings once."""
        return (f"{self.month}: this installation's monthly model budget ({self.budget.describe()}) is spent, so "
                "this run waits in line. It starts next month, or once Mull's operator raises the budget "
                "(MULL_INSTALLATION_BUDGET / MULL_INSTALLATION_BUDGETS).")


async def account_of(redis: Any, installation_id: int) -> str | None:
    raw = await reply(redis.hget(keys.INSTALLATIONS, str(installation_id)))
    try:
        return str(json.loads(raw).get("account") or "") or None if raw else None
    except (ValueError, AttributeError):
        return None


async def state(redis: Any, settings: MullSettings, installation_id: int, now: float | None = None) -> BudgetState:
    budget = settings.budget_for(installation_id, await account_of(redis, installation_id))
    month = spend.month_of(now)
    spent = await spend.of_month(redis, installation_id, month) if budget.limited else spend.Spend()
    return BudgetState(budget, spent, month)
