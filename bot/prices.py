"""What model tokens cost, from the operator's ``MULL_MODEL_PRICES``: US dollars per million tokens, in and out.

Two ways to write it: ``model=in/out`` pairs separated by commas (``gpt-4o=2.5/10, claude-sonnet-4=3/15``;
a model name may hold ``/`` since only the last ``=`` splits it), or a JSON object of ``{"model": [in, out]}``
or ``{"model": {"input": in, "output": out}}``. A model not listed has an unknown price: its tokens are
counted and shown, never guessed at.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

EXAMPLE = "gpt-4o=2.5/10, claude-sonnet-4=3/15"


class BadPrices(ValueError):
    """The setting names the bad entry and shows a correct one."""


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens."""

    input: float
    output: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input + output_tokens * self.output) / 1_000_000


def parse(text: str) -> dict[str, Price]:
    """The price list, or BadPrices naming the entry that cannot be read."""
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadPrices(f"is not valid JSON ({exc.msg} at character {exc.pos}); write {{\"model\": [in, out]}} "
                            f"or pairs such as {EXAMPLE}") from None
        return {str(model): _json_price(str(model), value) for model, value in data.items()}
    prices: dict[str, Price] = {}
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        model, eq, pair = entry.rpartition("=")
        given_in, slash, given_out = pair.partition("/")
        if not eq or not model.strip() or not slash:
            raise BadPrices(f"entry '{entry[:60]}' is not model=in/out; write e.g. {EXAMPLE} (US dollars per "
                            "million input/output tokens)")
        prices[model.strip()] = Price(_amount(entry, given_in), _amount(entry, given_out))
    return prices


def _json_price(model: str, value: Any) -> Price:
    if isinstance(value, Mapping) and set(value) == {"input", "output"}:
        given: Any = (value["input"], value["output"])
    elif isinstance(value, list) and len(value) == 2:
        given = value
    else:
        raise BadPrices(f"entry '{model[:60]}' is not [in, out] or {{\"input\": in, \"output\": out}} (US dollars "
                        "per million tokens)")
    return Price(_amount(model, given[0]), _amount(model, given[1]))


def _amount(entry: str, given: Any) -> float:
    try:
        value = float(str(given).strip().lstrip("$"))
    except ValueError:
        value = math.nan
    if isinstance(given, bool) or not math.isfinite(value) or value < 0:
        raise BadPrices(f"entry '{str(entry)[:60]}' has '{str(given)[:20]}' where a price is expected: a number "
                        f"of US dollars per million tokens, 0 or more (e.g. {EXAMPLE})")
    return value


def cost(prices: Mapping[str, Price], model: str, input_tokens: int, output_tokens: int) -> float | None:
    """What the tokens cost, or None when the model has no price."""
    price = prices.get(model)
    return None if price is None else price.cost(input_tokens, output_tokens)
