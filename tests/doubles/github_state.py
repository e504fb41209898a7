"""In-memory state of the GitHub double: users, repos, issues, PRs, comments, installations, tokens, logs.

Plain dataclasses so tests inspect what the bot did directly. One RLock guards it: the server thread
mutates while the test thread reads.
"""

from __future__ import annotations

import re
import secrets
import string
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .github_records import CheckRun, CheckSuite, Review, ReviewComment

PERMISSIONS = ("admin", "maintain", "write", "triage", "read", "none")
DEFAULT_TOKEN_PERMISSIONS = {"contents": "write", "issues": "write", "pull_requests": "write",
                             "metadata": "read"}


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def iso(when: datetime | None) -> str | None:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


@dataclass
class User:
    login: str
    id: int
    type: str = "User"  # "User", "Bot" or "Organization"


@dataclass
class Label:
    id: int
    name: str
    color: str = "ededed"
    description: str | None = None


@dataclass
class Reaction:
    id: int
    user: User
    content: str
    created_at: datetime = field(default_factory=now)


@dataclass
class Comment:
    id: int
    repo: str
    issue_number: int
    user: User
    body: str
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)
    history: list[str] = field(default_factory=list)  # previous bodies, oldest first
    reactions: list[Reaction] = field(default_factory=list)
    deleted: bool = False

    @property
    def edits(self) -> int:
        return len(self.history)


@dataclass
class Issue:
    """An issue, or the issue half of a pull request (they share numbers, labels and comments)."""

    id: int
    number: int
    title: str
    body: str | None
    user: User
    state: str = "open"
    state_reason: str | None = None
    labels: list[str] = field(default_factory=list)
    reactions: list[Reaction] = field(default_factory=list)
    is_pull: bool = False
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)
    closed_at: datetime | None = None
    assignees: list[str] = field(default_factory=list)  # logins
    history: list[str | None] = field(default_factory=list)  # previous bodies, oldest first

    @property
    def edits(self) -> int:
        """How often the body was changed (an edit that leaves it the same is not one)."""
        return len(self.history)


@dataclass
class Pull:
    id: int
    number: int
    head_ref: str
    base_ref: str
    head_sha: str  # last sha seen; the JSON reads the live branch when it still exists
    draft: bool = False
    merged: bool = False
    merged_at: datetime | None = None
    merged_by: User | None = None
    merge_commit_sha: str | None = None
    merged_base_sha: str | None = None  # the base branch's tip just before the merge
    requested_reviewers: list[str] = field(default_factory=list)  # logins


@dataclass
class Repo:
    id: int
    owner: User
    name: str
    path: Path
    default_branch: str = "main"
    private: bool = False
    issues: dict[int, Issue] = field(default_factory=dict)
    pulls: dict[int, Pull] = field(default_factory=dict)
    labels: dict[str, Label] = field(default_factory=dict)  # lower-cased name -> label
    collaborators: dict[str, str] = field(default_factory=dict)  # login -> role
    reviews: dict[int, Review] = field(default_factory=dict)
    review_comments: dict[int, ReviewComment] = field(default_factory=dict)
    check_suites: dict[int, CheckSuite] = field(default_factory=dict)
    check_runs: dict[int, CheckRun] = field(default_factory=dict)
    next_number: int = 1
    created_at: datetime = field(default_factory=now)

    @property
    def full_name(self) -> str:
        return f"{self.owner.login}/{self.name}"


@dataclass
class Installation:
    id: int
    account: User
    repos: set[str] | None = None  # full names; None = every repo the account owns

    def covers(self, repo: Repo) -> bool:
        if self.repos is None:
            return repo.owner.login.lower() == self.account.login.lower()
        return repo.full_name.lower() in {r.lower() for r in self.repos}


@dataclass
class Token:
    token: str
    installation_id: int
    expires_at: datetime
    repos: set[str] | None  # narrowed by the access_tokens body, else the installation's coverage
    permissions: dict[str, str]
    revoked: bool = False

    @property
    def live(self) -> bool:
        return not self.revoked and self.expires_at > datetime.now(UTC)


@dataclass
class RequestRecord:
    method: str
    path: str
    query: str
    status: int | None = None
    auth: str = "none"  # none | jwt | token | basic | invalid
    installation_id: int | None = None
    token: str | None = None
    injected: bool = False


@dataclass
class Failure:
    """An injected answer; ``status`` 0 with a ``delay`` stalls the request, then serves it as usual."""

    method: str
    path: re.Pattern[str]
    status: int
    remaining: int
    body: dict | None
    headers: dict[str, str]
    delay: float = 0.0


@dataclass
class AppConfig:
    app_id: int
    slug: str
    public_key_pem: str
    owner_login: str = "mull-dev"
    name: str = "Mull (test)"


@dataclass
class ManifestApp:
    """An App on its way through the manifest flow: posted (``code`` None), created, then traded (``traded``)."""

    manifest: dict
    owner: str  # login of the account or organisation that will own it
    organisation: bool
    state: str | None  # the flow's ``state``, handed back on the redirect
    posted_at: float
    name: str = ""
    code: str | None = None
    created_at: float | None = None
    traded: bool = False


class State:
    """Everything the double knows. Methods take the lock; tests may read attributes freely."""

    def __init__(self, app: AppConfig, root: Path) -> None:
        self.lock = threading.RLock()
        self.app = app
        self.root = root
        self.base_url = ""
        self.users: dict[str, User] = {}
        self.repos: dict[str, Repo] = {}  # lower-cased full name -> repo
        self.installations: dict[int, Installation] = {}
        self.tokens: dict[str, Token] = {}
        self.tokens_minted: list[Token] = []
        self.comments: dict[int, Comment] = {}
        self.requests: list[RequestRecord] = []
        self.failures: list[Failure] = []
        self.manifest_apps: dict[str, ManifestApp] = {}  # by the id of its "Create GitHub App" page
        self._ids = 1000
        self.bot = self.user(f"{app.slug}[bot]", type="Bot")

    def next_id(self) -> int:
        with self.lock:
            self._ids += 1
            return self._ids

    def user(self, login: str, type: str = "User") -> User:
        """The user named ``login``, created on first mention."""
        with self.lock:
            if login.lower() not in self.users:
                self.users[login.lower()] = User(login, self.next_id(), type)
            return self.users[login.lower()]

    def repo(self, full_name: str) -> Repo:
        with self.lock:
            return self.repos[full_name.lower()]

    def find_repo(self, owner: str, name: str) -> Repo | None:
        return self.repos.get(f"{owner}/{name}".lower())

    def installation_for(self, repo: Repo) -> Installation | None:
        with self.lock:
            return next((i for i in self.installations.values() if i.covers(repo)), None)

    def mint_token(self, installation: Installation, repos: set[str] | None,
                   permissions: dict[str, str] | None, record: bool = True) -> Token:
        alphabet = string.ascii_letters + string.digits
        value = "ghs_" + "".join(secrets.choice(alphabet) for _ in range(36))
        token = Token(value, installation.id, now() + timedelta(hours=1), repos,
                      dict(permissions or DEFAULT_TOKEN_PERMISSIONS))
        with self.lock:
            self.tokens[value] = token
            if record:
                self.tokens_minted.append(token)
        return token

    def live_token(self, value: str | None) -> Token | None:
        token = self.tokens.get(value or "")
        return token if token and token.live else None

    def token_covers(self, token: Token, repo: Repo) -> bool:
        installation = self.installations.get(token.installation_id)
        if installation is None or not installation.covers(repo):
            return False
        return token.repos is None or repo.full_name.lower() in {r.lower() for r in token.repos}

    def new_issue(self, repo: Repo, title: str, body: str | None, user: User, *, is_pull: bool = False,
                  labels: list[str] | tuple[str, ...] = ()) -> Issue:
        with self.lock:
            issue = Issue(self.next_id(), repo.next_number, title, body, user, is_pull=is_pull)
            repo.next_number += 1
            repo.issues[issue.number] = issue
            for name in labels:
                issue.labels.append(self.ensure_label(repo, name).name)
            return issue

    def ensure_label(self, repo: Repo, name: str) -> Label:
        with self.lock:
            if name.lower() not in repo.labels:
                repo.labels[name.lower()] = Label(self.next_id(), name)
            return repo.labels[name.lower()]

    def add_comment(self, repo: Repo, number: int, body: str, user: User) -> Comment:
        with self.lock:
            comment = Comment(self.next_id(), repo.full_name, number, user, body)
            self.comments[comment.id] = comment
            repo.issues[number].updated_at = now()
            return comment

    def comments_on(self, repo: Repo, number: int) -> list[Comment]:
        with self.lock:
            return [c for c in self.comments.values()
                    if c.repo == repo.full_name and c.issue_number == number and not c.deleted]

    def record(self, rec: RequestRecord) -> None:
        with self.lock:
            self.requests.append(rec)

    def take_failure(self, method: str, path: str) -> Failure | None:
        """The first injected failure matching this request, consuming one of its uses."""
        with self.lock:
            for failure in self.failures:
                if failure.method in (method, "*") and failure.path.search(path):
                    failure.remaining -= 1
                    if failure.remaining <= 0:
                        self.failures.remove(failure)
                    return failure
        return None
