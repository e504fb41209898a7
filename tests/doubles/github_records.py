"""Records of the GitHub double's code review and CI state: reviews, review comments, check suites and runs.

Kept per repo (``Repo.reviews`` etc.) beside issues and pulls; plain dataclasses like github_state.py's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .github_state import User, now

# REST review states; webhook payloads carry them lower-cased, as GitHub's do.
REVIEW_STATES = ("APPROVED", "CHANGES_REQUESTED", "COMMENTED", "PENDING", "DISMISSED")
# A suite's conclusion is its runs' highest-priority one (GitHub's checks guide).
CONCLUSION_PRIORITY = ("action_required", "cancelled", "timed_out", "failure", "startup_failure", "stale",
                       "neutral", "success", "skipped")


@dataclass
class Review:
    id: int
    repo: str
    number: int
    user: User
    body: str
    state: str  # one of REVIEW_STATES
    commit_id: str
    submitted_at: datetime | None = None
    comment_ids: list[int] = field(default_factory=list)


@dataclass
class ReviewComment:
    """A review comment; a thread is a root comment and the comments replying to it."""

    id: int
    repo: str
    number: int
    review_id: int
    user: User
    body: str
    path: str
    line: int  # as anchored at ``commit_id``; JSON re-anchors it at the PR's current head
    side: str  # RIGHT | LEFT
    commit_id: str
    diff_hunk: str
    position: int
    anchor_text: str  # the commented line's text, to tell whether later pushes outdated the thread
    start_line: int | None = None
    start_side: str | None = None
    in_reply_to_id: int | None = None
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)
    history: list[str] = field(default_factory=list)
    deleted: bool = False
    pending: bool = False
    resolved_by: User | None = None  # thread state, kept on the root comment
    reactions: list = field(default_factory=list)

    @property
    def resolved(self) -> bool:
        return self.resolved_by is not None


@dataclass
class Annotation:
    path: str
    start_line: int
    end_line: int
    message: str
    annotation_level: str = "failure"  # notice | warning | failure
    title: str | None = None
    raw_details: str | None = None
    start_column: int | None = None
    end_column: int | None = None


@dataclass
class CheckSuite:
    id: int
    head_sha: str
    head_branch: str | None
    app_slug: str
    before: str | None = None
    status: str = "queued"
    conclusion: str | None = None
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)


@dataclass
class CheckRun:
    id: int
    suite_id: int
    name: str
    head_sha: str
    status: str = "in_progress"  # queued | in_progress | completed
    conclusion: str | None = None
    title: str | None = None
    summary: str | None = None
    text: str | None = None
    annotations: list[Annotation] = field(default_factory=list)
    started_at: datetime = field(default_factory=now)
    completed_at: datetime | None = None
    details_url: str | None = None
    external_id: str = ""


def suite_conclusion(conclusions: list[str | None]) -> str | None:
    known = [c for c in conclusions if c in CONCLUSION_PRIORITY]
    return min(known, key=CONCLUSION_PRIORITY.index) if known else None
