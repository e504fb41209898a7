"""What Mull knows about one labeled issue on its way through the backlog, as the dashboard and digests read it.

One record per issue (its pull request rides along), kept in Redis by ``worker.backlog.store``. GitHub holds the
same facts in labels and the status comment's marker, so the records can be rebuilt after a Redis loss.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any


class ItemState(StrEnum):
    QUEUED = "queued"  # labeled, waiting for an agent slot (max_in_flight)
    WORKING = "working"  # an agent run is going
    WAITING = "waiting"  # the plan asked a question or waits for `/mull go`
    DRAFT = "draft"  # draft pull request under critique or automatic revision
    HELD = "held"  # finished, but the review queue or every reviewer is full (max_awaiting_review): stays a draft
    AWAITING = "awaiting"  # out of draft, review requested
    SNOOZED = "snoozed"
    FAILED = "failed"


# Item.extra of a held pull request whose reviewers are all at their cap (worker/backlog/reviewer_cap.py):
# [{"login": ..., "prs": [[owner/name, number, url], ...]}, ...]; absent when this repository's queue is full.
HELD_BY = "held_by"


@dataclass(frozen=True)
class Item:
    issue: int
    title: str = ""
    state: ItemState = ItemState.QUEUED
    pr: int | None = None
    labeled_at: float = 0.0  # when the run was asked for: the queue's order
    since: float = 0.0  # when it entered ``state`` (awaiting: the review's age)
    effort: int | None = None  # the critique's review effort, 1-5
    reviewers: tuple[str, ...] = ()  # requested at release
    reason: str = ""  # why it failed, or what it waits for
    wake_at: float | None = None  # snoozed until (epoch s); None with ``until_issue`` set means no time
    until_issue: int | None = None
    snoozes: int = 0  # how often it was snoozed: three times and the digest asks to split or close it
    labeled_by: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        data = asdict(self)
        data["reviewers"] = list(self.reviewers)
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Item:
        data = json.loads(raw)
        data["state"] = ItemState(data.get("state", "queued"))
        data["reviewers"] = tuple(data.get("reviewers") or ())
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    def moved(self, state: ItemState, now: float, **changes: Any) -> Item:
        return replace(self, state=state, since=now if state is not self.state else self.since, **changes)


def queue_order(item: Item) -> tuple[float, int]:
    """Labeled issues wait for an agent slot oldest first."""
    return (item.labeled_at, item.issue)


def held_order(item: Item) -> tuple[int, int, int]:
    """Finished drafts leave for review oldest labeled first (to the second, so issues labeled together in one
    go count as one batch), then the smallest critique effort."""
    return (math.floor(item.labeled_at), item.effort if item.effort is not None else 6, item.issue)
