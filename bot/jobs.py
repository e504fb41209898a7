"""The contract between ``bot/`` and ``worker/``: job names, their argument types and their job ids.

The receiver enqueues ``handle_delivery``; the worker decides and enqueues the rest. Job ids are
deterministic so that arq refuses a second copy of a job that is queued, running or has a kept result.
"""

from __future__ import annotations

from dataclasses import dataclass

QUEUE = "arq:queue"

HANDLE_DELIVERY = "handle_delivery"
SOLVE_ISSUE = "solve_issue"
RECLAIM_ORPHANS = "reclaim_orphans"


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


def delivery_job_id(guid: str) -> str:
    return f"delivery:{guid}"


def solve_job_id(repo_id: int, issue: int) -> str:
    return f"solve:{repo_id}:{issue}"


def branch_name(issue: int) -> str:
    return f"mull/issue-{issue}"
