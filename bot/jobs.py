"""The contract between ``bot/`` and ``worker/``: job names, their argument types and their job ids.

The receiver enqueues ``handle_delivery``; the worker decides and enqueues the rest, always through the
``enqueue_*`` helpers here, which pair each job's name, argument type and id. Job ids are deterministic so
that arq refuses a second copy of a job that is queued, running or has a kept result.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from arq import constants as arq_keys

QUEUE = arq_keys.default_queue_name

HANDLE_DELIVERY = "handle_delivery"
SOLVE_ISSUE = "solve_issue"
CRITIQUE_PR = "critique_pr"
REVISE_PR = "revise_pr"
WAKE_ITEM = "wake_item"
REFRESH_BACKLOG = "refresh_backlog"


@dataclass(frozen=True)
class RepoRef:
    """One repository as a job knows it: the installation that serves it, its id and its name.

    Requests keep their flat fields on the wire (``installation_id``, ``repo_id``, ``repo``) so jobs queued by
    an older Mull still decode; ``request.ref`` is how code reads them.
    """

    installation_id: int
    repo_id: int
    owner: str
    name: str

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    @classmethod
    def of(cls, installation_id: int, repo_id: int, full_name: str) -> RepoRef:
        """From ``owner/name``; ValueError naming the fix when it is not that."""
        owner, sep, name = full_name.partition("/")
        if not sep or not owner or not name or "/" in name:
            raise ValueError(f"repository name {full_name[:100]!r} is not owner/name")
        return cls(installation_id, repo_id, owner, name)


class _OnRepo:
    """Requests about one repository: their ``RepoRef``."""

    installation_id: int
    repo_id: int
    repo: str

    @property
    def ref(self) -> RepoRef:
        return RepoRef.of(self.installation_id, self.repo_id, self.repo)


@dataclass(frozen=True)
class Delivery:
    """One accepted webhook delivery, exactly as GitHub sent it."""

    guid: str
    event: str
    body: bytes
    received_at_ms: int


@dataclass(frozen=True)
class SolveRequest(_OnRepo):
    """Run the agent for one issue and open or update its pull request."""

    installation_id: int
    repo_id: int
    repo: str  # owner/name
    issue: int
    requested_by: str  # login of whoever applied the label
    trigger: str  # delivery guid that asked for this run; a new trigger means a new revision


@dataclass(frozen=True)
class CritiqueRequest(_OnRepo):
    """Critique one head commit of a Mull pull request."""

    installation_id: int
    repo_id: int
    repo: str
    pr: int
    head_sha: str
    force: bool = False  # `/mull critique`: critique again even if this head was critiqued


RevisionReason = Literal["critique", "review", "ci", "command", "update"]


@dataclass(frozen=True)
class ReviseRequest(_OnRepo):
    """Revise a Mull pull request on its branch: after a `fix` critique, a human review, failing CI or a command."""

    installation_id: int
    repo_id: int
    repo: str
    pr: int
    reason: RevisionReason
    notes: str  # what to address, as the agent will read it
    requested_by: str
    # reason "update" after a conflicting base update: the head and base commits whose merge (with conflict
    # markers) the revision starts from; empty: it starts from the branch as pushed.
    update_head: str = ""
    update_base: str = ""


@dataclass(frozen=True)
class WakeRequest(_OnRepo):
    """End a timed snooze of an issue or pull request."""

    installation_id: int
    repo_id: int
    repo: str
    number: int
    at_ms: int  # the snooze this wake belongs to; a later snooze or an earlier wake makes it stale


@dataclass(frozen=True)
class RefreshRequest(_OnRepo):
    """Bring a repository's visible queue up to date: status comments' positions and the dashboard issue."""

    installation_id: int
    repo_id: int
    repo: str


# The job argument types, the only objects besides plain data a job or its result may hold in Redis
# (``bot.job_codec`` encodes them by class name and refuses every other class).
JOB_TYPES: tuple[type, ...] = (Delivery, SolveRequest, CritiqueRequest, ReviseRequest, WakeRequest, RefreshRequest,
                               RepoRef)


class JobQueue(Protocol):
    """What the helpers need of arq's pool (``ArqRedis``): enqueue, answering None for an id arq holds."""

    async def enqueue_job(self, function: str, *args: Any, _job_id: str | None = None,
                          _defer_until: datetime | None = None, _defer_by: float | timedelta | None = None,
                          **kwargs: Any) -> Any: ...


async def _enqueue(queue: JobQueue, name: str, request: object, job_id: str, *,
                   defer_by: float | timedelta | None = None, defer_until: datetime | None = None) -> bool:
    """True when the job was enqueued; False when arq already holds one with this id."""
    job = await queue.enqueue_job(name, request, _job_id=job_id, _defer_by=defer_by, _defer_until=defer_until)
    return job is not None


async def enqueue_solve(queue: JobQueue, request: SolveRequest) -> bool:
    return await _enqueue(queue, SOLVE_ISSUE, request, solve_job_id(request.repo_id, request.issue))


async def enqueue_critique(queue: JobQueue, request: CritiqueRequest, *, again: str | None = None) -> bool:
    """``again`` (a delivery guid) makes a new id for a forced critique of a head already critiqued."""
    job_id = critique_job_id(request.repo_id, request.pr, request.head_sha)
    return await _enqueue(queue, CRITIQUE_PR, request, f"{job_id}:again:{again}" if again else job_id)


async def enqueue_revise(queue: JobQueue, request: ReviseRequest, occasion: str, *,
                         defer_by: float | timedelta | None = None) -> bool:
    """``occasion`` names what asked (a head sha, a review time, a delivery): one revision per occasion."""
    return await _enqueue(queue, REVISE_PR, request, revise_job_id(request.repo_id, request.pr, occasion),
                          defer_by=defer_by)


async def enqueue_wake(queue: JobQueue, request: WakeRequest) -> bool:
    """The wake runs when the snooze ends; a later snooze has another ``at_ms``, so another job."""
    return await _enqueue(queue, WAKE_ITEM, request, f"wake:{request.repo_id}:{request.number}:{request.at_ms}",
                          defer_until=datetime.fromtimestamp(request.at_ms / 1000).astimezone())


async def enqueue_refresh(queue: JobQueue, request: RefreshRequest, defer_by: float) -> bool:
    return await _enqueue(queue, REFRESH_BACKLOG, request, refresh_job_id(request.repo_id), defer_by=defer_by)


async def enqueue_delivery_retry(queue: JobQueue, delivery: Delivery, retry: int) -> bool:
    return await _enqueue(queue, HANDLE_DELIVERY, delivery, delivery_retry_job_id(delivery.guid, retry))


_REPO_JOB_KINDS = ("solve", "critique", "revise", "wake", "refresh")


def repo_of_job(job_id: str) -> int | None:
    """The repository id a job works on, read from its id; None for jobs of no one repository."""
    kind, _, rest = job_id.partition(":")
    repo = rest.split(":", 1)[0]
    return int(repo) if kind in _REPO_JOB_KINDS and repo.isdigit() else None


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
    return f"{solve_job_prefix(repo_id)}{issue}"


def solve_job_prefix(repo_id: int) -> str:
    """What every solve job id of a repository starts with (the backlog's start script appends the issue)."""
    return f"solve:{repo_id}:"


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
