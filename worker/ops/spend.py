"""What model runs cost: tokens and money per issue (with its pull request) and per installation per month.

Every run that reaches a model (an agent run or a critique through the gateway, a plan direct) adds its
tokens here when it ends, priced with ``MULL_MODEL_PRICES``. Counts are integers in Redis (money in US
micro-dollars) so workers add to them side by side without losing an increment; the same figures feed the
pull request body, the status comment, ``mull status``, /metrics and the installations' budgets.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot import keys, prices

MONTH_TTL = 400 * 24 * 3600  # a month's figures outlive the month for reports, not forever
ISSUE_TTL = 180 * 24 * 3600
MICRO = 1_000_000


@dataclass(frozen=True)
class Spend:
    """Model use summed over runs; ``unpriced``: tokens of models with no price (not in ``cost_micro``)."""

    input: int = 0
    output: int = 0
    cost_micro: int = 0
    unpriced: int = 0
    runs: int = 0

    @property
    def tokens(self) -> int:
        return self.input + self.output

    @property
    def dollars(self) -> float:
        return self.cost_micro / MICRO

    def describe(self) -> str:
        """``12,345 tokens (10,000 in, 2,345 out), $0.42``; the price is "unknown" for tokens without one."""
        if not self.tokens:
            return "no model tokens"
        text = f"{self.tokens:,} tokens ({self.input:,} in, {self.output:,} out)"
        if self.unpriced == self.tokens:
            return f"{text}, unknown price"
        money = f"${self.dollars:,.2f}"
        if self.unpriced:
            return f"{text}, {money} plus {self.unpriced:,} tokens at an unknown price"
        return f"{text}, {money}"

    @classmethod
    def of(cls, data: Mapping[bytes, bytes]) -> Spend:
        def num(name: str) -> int:
            return int(data.get(name.encode(), b"0") or 0)

        return cls(num("input"), num("output"), num("cost_micro"), num("unpriced"), num("runs"))


def month_of(now: float | None = None) -> str:
    """The month figures and budgets count in: ``YYYY-MM`` in UTC."""
    return datetime.fromtimestamp(time.time() if now is None else now, UTC).strftime("%Y-%m")


def priced(price_list: Mapping[str, prices.Price], model: str, input_tokens: int, output_tokens: int) -> Spend:
    """One run's use, priced."""
    cost = prices.cost(price_list, model, input_tokens, output_tokens)
    if cost is None:
        return Spend(input_tokens, output_tokens, 0, input_tokens + output_tokens, 1)
    return Spend(input_tokens, output_tokens, round(cost * MICRO), 0, 1)


async def record(redis: Any, price_list: Mapping[str, prices.Price], *, installation_id: int, repo_id: int,
                 issue: int | None, model: str, input_tokens: int, output_tokens: int,
                 now: float | None = None) -> Spend:
    """Add one run's tokens to its issue's and its installation's month; the run's priced use."""
    run = priced(price_list, model, input_tokens, output_tokens)
    month = keys.installation_spend(installation_id, month_of(now))
    targets = [(month, MONTH_TTL)] + ([(keys.issue_spend(repo_id, issue), ISSUE_TTL)] if issue is not None else [])
    async with redis.pipeline(transaction=True) as pipe:
        for key, ttl in targets:
            for name, value in (("input", run.input), ("output", run.output), ("cost_micro", run.cost_micro),
                                ("unpriced", run.unpriced), ("runs", 1)):
                pipe.hincrby(key, name, value)
            pipe.expire(key, ttl)
        # All-time counters by installation for /metrics (Prometheus works out a month from them).
        pipe.hincrby(keys.STATS, f"spend_tokens|{installation_id}|input", run.input)
        pipe.hincrby(keys.STATS, f"spend_tokens|{installation_id}|output", run.output)
        pipe.hincrby(keys.STATS, f"spend_cost_micro|{installation_id}", run.cost_micro)
        pipe.hincrby(keys.STATS, f"spend_unpriced|{installation_id}", run.unpriced)
        await pipe.execute()
    return run


async def of_issue(redis: Any, repo_id: int, issue: int) -> Spend:
    return Spend.of(await redis.hgetall(keys.issue_spend(repo_id, issue)))


async def of_month(redis: Any, installation_id: int, month: str | None = None) -> Spend:
    return Spend.of(await redis.hgetall(keys.installation_spend(installation_id, month or month_of())))
