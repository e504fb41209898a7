"""The contract between ``bot/`` and ``worker/``: job names, their argument types and their job ids.

The receiver enqueues ``handle_delivery``; the worker decides and enqueues the rest. Job ids are
deterministic so that arq refuses a second copy of a job that is queued, running or has a kept result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from arq import constants as arq_keys

QUEUE = arq_keys.default_queue_name

HANDLE_DELIVERY = "handle_delivery"
SOLVE_ISSUE = "solve_issue"
CRITIQUE_PR = "critique_pr"
REVISE_PR = "revise_pr"
WAKE_ITEM = "wake_item"
REFRESH_BACKLOG = "refresh_backlog"


@dataclass(frozen=True)
class Delivery:
    """One accepted webhook delivery, exactly as GitHub sent it."""

    guid: str
    event: str
    body: bytes
    received_at_ms: int


@dataclass(frozen=True)
class SolveRequest:
    """Run the agent for one issue and open or update its pull request."""

    installation_id: int
    repo_id: int
    repo: str  # owner/name
    issue: int
    requested_by: str  # login of whoever applied the label
    trigger: str  # delivery guid that asked for this run; a new trigger means a new revision


@dataclass(frozen=True)
class CritiqueRequest:
    """Critique one head commit of a Mull pull request."""

    installation_id: int
    repo_id: int
    repo: str
    pr: int
    head_sha: str
    force: bool = False  # `/mull critique`: critique again even if this head was critiqued


RevisionReason = Literal["critique", "review", "ci", "command"]


@dataclass(frozen=True)
class ReviseRequest:
    """Revise a Mull pull request on its branch: after a `fix` critique, a human review, failing CI or a command."""

    installation_id: int
    repo_id: int
    repo: str
    pr: int
    reason: RevisionReason
    notes: str  # what to address, as the agent will read it
    requested_by: str


@dataclass(frozen=True)
class WakeRequest:
    """End a timed snooze of an issue or pull request."""

    installation_id: int
    repo_id: int
    repo: str
    number: int
    at_ms: int  # the snooze this wake belongs to; a later snooze or an earlier wake makes it stale


@dataclass(frozen=True)
class RefreshRequest:
    """Bring a repository's visible queue up to date: status comments' positions and the dashboard issue."""

    installation_id: int
    repo_id: int
    repo: str


# The job argument types, the only objects besides plain data a job or its result may hold in Redis
# (``bot.job_codec`` encodes them by class name and refuses every other class).
JOB_TYPES: tuple[type, ...] = (Delivery, SolveRequest, CritiqueRequest, ReviseRequest, WakeRequest, RefreshRequest)


def refresh_job_id(repo_id: int) -> str:
    """One pending refresh per repository: changes that come in a burst are shown by one edit."""
    return f"refresh:{repo_id}"


def delivery_job_id(guid: str) -> str:
    return f"delivery:{guid}"


RETRY_MARK = ":retry:"


def delivery_retry_job_id(guid: str, retry: int) -> str:
    """The ``retry``-th retry of a dead letter: a new id, since the failed job's kept result blocks the old one,
    and a deterministic one, so two operators retrying the same letter at once enqueue it once."""
    return f"{delivery_job_id(guid)}{RETRY_MARK}{retry}"


def retry_of(job_id: str) -> int:
    """Which retry of its delivery a ``handle_delivery`` job id is: 0 for the receiver's own job."""
    head, mark, n = job_id.rpartition(RETRY_MARK)
    return int(n) if mark and head.startswith("delivery:") and n.isdigit() else 0


def solve_job_id(repo_id: int, issue: int) -> str:
    return f"solve:{repo_id}:{issue}"


def critique_job_id(repo_id: int, pr: int, head_sha: str) -> str:
    return f"critique:{repo_id}:{pr}:{head_sha}"


def revise_job_id(repo_id: int, pr: int, reason: str) -> str:
    return f"revise:{repo_id}:{pr}:{reason}"


BRANCH_PREFIX = "mull/issue-"


def branch_name(issue: int) -> str:
    return f"{BRANCH_PREFIX}{issue}"


def issue_of_branch(ref: str) -> int | None:
    """The issue a Mull branch works on; None for any other branch."""
    rest = ref.removeprefix("refs/heads/").removeprefix(BRANCH_PREFIX)
    return int(rest) if rest.isdigit() and ref.removeprefix("refs/heads/").startswith(BRANCH_PREFIX) else None
