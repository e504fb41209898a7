"""Which diffs go in the critique prompt, so its cost stays under a fixed token budget however big the PR.

The rule: files not worth reviewing (deleted, binary, generated, lock, vendored, no diff available) never
go in. The rest are taken smallest diff first while they fit: for a fixed budget that reviews the most
files, and a file whose diff alone would not fit is left out whole rather than cut, so the critic never
reviews half a change believing it saw all of it. Every file left out is in ``Selection.left_out`` with its
reason; the prompt names as many as fit in LISTING_SHARE of the budget and counts the rest by reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from worker.critique.classify import BINARY, DELETED, GENERATED, NO_PATCH, OVER_BUDGET, VENDORED, skip_reason
from worker.critique.diff import FileDiff
from worker.critique.sections import LeftOut, file_section, left_out_block, left_out_line

TokenCounter = Callable[[str], int]

DEFAULT_BUDGET_TOKENS = 24_000  # the whole prompt; fits a 32k-context local model with room to answer
MIN_BUDGET_TOKENS = 8_000  # below this the prompt's fixed parts alone may not fit
LISTING_SHARE = 0.2  # of the budget, at most, for naming left-out files one per line
_SEPARATOR = 1  # parts are joined by a blank line; one token covers it under any sane counter
_REASON_ORDER = (OVER_BUDGET, NO_PATCH, DELETED, GENERATED, VENDORED, BINARY)


def estimate_tokens(text: str) -> int:
    """Four characters a token, rounded up: close for English and code, and never zero for a line."""
    return math.ceil(len(text) / 4)


@dataclass(frozen=True)
class Selection:
    included: tuple[FileDiff, ...]  # in diff order
    left_out: tuple[LeftOut, ...]  # every other changed file, most relevant reason first
    listed: int  # how many of ``left_out`` the prompt names one by one; the rest it counts by reason


def select(files: Sequence[FileDiff], budget_tokens: int, fixed_overhead_tokens: int,
           counter: TokenCounter = estimate_tokens) -> Selection:
    """``fixed_overhead_tokens`` is the prompt without file sections and left-out list (prompt.overhead)."""
    skipped: dict[int, LeftOut] = {}
    costs: dict[int, int] = {}
    for index, file in enumerate(files):
        reason = skip_reason(file)
        if reason:
            skipped[index] = _left_out(file, reason)
        else:
            costs[index] = counter(file_section(file)) + _SEPARATOR
    line_costs = {index: counter(left_out_line(skipped.get(index) or _left_out(file, OVER_BUDGET)) + "\n")
                  for index, file in enumerate(files)}
    cap = int(budget_tokens * LISTING_SHARE)
    room = budget_tokens - fixed_overhead_tokens - _SEPARATOR
    everything = [item for _, item in _ordered(files, skipped, set(costs))]
    frame = counter(left_out_block(everything, 0))  # the list's header and counts line, at their longest
    chosen = _greedy(costs, line_costs, room, cap, frame)
    while True:
        left = _ordered(files, skipped, set(costs) - chosen)
        used = sum(costs[index] for index in chosen)
        listed = _listed([line_costs[index] for index, _ in left], min(cap, room - used - frame))
        items = [item for _, item in left]
        total = used + counter(left_out_block(items, listed)) + _SEPARATOR
        if total <= room or not chosen:
            break  # over only when the fixed part alone is: MIN_BUDGET_TOKENS is there to prevent that
        # A counter that is not additive over pieces made the estimate short: drop the biggest diff and retry.
        chosen.discard(max(chosen, key=lambda index: (costs[index], files[index].path)))
    return Selection(included=tuple(files[index] for index in sorted(chosen)), left_out=tuple(items),
                     listed=listed)


def _greedy(costs: dict[int, int], line_costs: dict[int, int], room: int, cap: int, frame: int) -> set[int]:
    """Smallest first; the left-out list's cost is re-reckoned until no further file fits."""
    order = sorted(costs, key=lambda index: (costs[index], index))
    fixed_lines = sum(cost for index, cost in line_costs.items() if index not in costs)
    chosen: set[int] = set()
    used = 0
    while True:
        listing = frame + min(cap, fixed_lines + sum(line_costs[i] for i in costs if i not in chosen))
        added = False
        for index in order:
            if index not in chosen and used + costs[index] + listing <= room:
                chosen.add(index)
                used += costs[index]
                added = True
        if not added:
            return chosen


def _ordered(files: Sequence[FileDiff], skipped: dict[int, LeftOut],
             over_budget: Iterable[int]) -> list[tuple[int, LeftOut]]:
    left = [*skipped.items(), *((index, _left_out(files[index], OVER_BUDGET)) for index in over_budget)]
    rank = {reason: position for position, reason in enumerate(_REASON_ORDER)}
    return sorted(left, key=lambda pair: (rank.get(pair[1].reason, len(rank)), pair[0]))


def _listed(line_costs: Sequence[int], room: int) -> int:
    """How many left-out files can be named one per line in ``room`` tokens."""
    spent = 0
    for count, cost in enumerate(line_costs):
        spent += cost
        if spent > room:
            return count
    return len(line_costs)


def _left_out(file: FileDiff, reason: str) -> LeftOut:
    return LeftOut(path=file.path, reason=reason, additions=file.additions, deletions=file.deletions)
