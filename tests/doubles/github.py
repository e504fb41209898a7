"""``GitHubDouble``: the GitHub the end-to-end tests run Mull against, with the helpers tests drive it by.

A real HTTP server (REST + git smart HTTP) over in-memory state and real bare repositories, sending
signed webhooks to Mull like GitHub does. See github_app.py for the routes.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from . import bare_repo
from .github_app import build_app
from .github_json import comment_json, issue_json, label_json, pull_json, sender_and_repo
from .github_oauth import OAuthState
from .github_people import PeopleMixin
from .github_state import (
    PERMISSIONS,
    AppConfig,
    Comment,
    Failure,
    Installation,
    Issue,
    Pull,
    Repo,
    RequestRecord,
    State,
    Token,
)
from .server import BackgroundServer
from .webhooks import Delivery, WebhookSender


def generate_app_keypair(bits: int = 2048) -> tuple[str, str]:
    """(private PEM, public PEM) for a test GitHub App."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


def basic_auth_header(token: str, user: str = "x-access-token") -> str:
    """The ``Authorization`` value git sends for an installation token."""
    return "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()


class GitHubDouble(PeopleMixin):
    """Start with ``with GitHubDouble(tmp_path, public_pem) as gh:``; ``gh.url`` is the REST base URL.

    Reviews, CI checks, merges, drafts and human pushes are driven by the PeopleMixin helpers
    (github_people.py).
    """

    def __init__(self, root: Path | str, public_key_pem: str | bytes, *, app_id: int = 4242,
                 slug: str = "mull-test", owner_login: str = "mull-dev", webhook_url: str | None = None,
                 webhook_secret: str = "webhook-secret", tls: tuple[str, str] | None = None) -> None:
        """``tls``: (certificate, key) files to serve https, as GitHub Enterprise Server does
        (tests/doubles/tls.py makes them); then the REST API answers under ``/api/v3`` too."""
        pem = public_key_pem.decode() if isinstance(public_key_pem, bytes) else public_key_pem
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.state = State(AppConfig(app_id, slug, pem, owner_login), self.root)
        self.hooks = WebhookSender(webhook_url, webhook_secret, app_id=app_id)
        self.oauth = OAuthState()  # the App's client id and secret, and users' sign-ins (github_oauth.py)
        self._server = BackgroundServer(build_app(self), tls=tls)
        self.url = self._server.url
        self.state.base_url = self.url

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> GitHubDouble:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
        self.hooks.close()

    def __enter__(self) -> GitHubDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def asgi_app(self):
        """The double as an ASGI app, for a client in the test's own process (``httpx.ASGITransport``)."""
        return self._server.app

    # -- configuration ------------------------------------------------------------------------------

    @property
    def app_id(self) -> int:
        return self.state.app.app_id

    @property
    def slug(self) -> str:
        return self.state.app.slug

    @property
    def bot_login(self) -> str:
        return self.state.bot.login

    @property
    def webhook_secret(self) -> str:
        return self.hooks.secret

    def set_webhook(self, url: str | None, secret: str | None = None) -> None:
        """Point deliveries at ``url`` (Mull's ``/webhook``), e.g. once ``mull web`` has a port."""
        self.hooks.url = url
        if secret is not None:
            self.hooks.secret = secret

    def create_repo(self, full_name: str, files: Mapping[str, str | bytes] | None = None, *,
                    repo_id: int | None = None, default_branch: str = "main", private: bool = False) -> Repo:
        """A repo backed by a bare git repository at ``root/owner/name.git`` with one commit of ``files``."""
        owner, name = full_name.split("/")
        state = self.state
        path = self.root / owner / f"{name}.git"
        bare_repo.init_bare(path, files or {"README.md": f"# {name}\n"}, default_branch)
        with state.lock:
            repo = Repo(repo_id or state.next_id(), state.user(owner), name, path, default_branch, private)
            state.repos[full_name.lower()] = repo
        return repo

    def create_issue(self, full_name: str, title: str, body: str = "", author: str = "octocat", *,
                     labels: list[str] | tuple[str, ...] = ()) -> Issue:
        """Record an issue (no webhook); numbers are shared with PRs like on GitHub."""
        state = self.state
        return state.new_issue(state.repo(full_name), title, body, state.user(author), labels=labels)

    def set_permission(self, full_name: str, login: str, permission: str) -> None:
        """``login``'s role on the repo: admin|maintain|write|triage|read|none (never set: 404)."""
        if permission not in PERMISSIONS:
            raise ValueError(f"permission must be one of {PERMISSIONS}")
        with self.state.lock:
            self.state.user(login)
            self.state.repo(full_name).collaborators[login.lower()] = permission

    def add_installation(self, installation_id: int, account: str, repos: list[str] | None = None,
                         account_type: str | None = None) -> Installation:
        """An installation on ``account``: every repo it owns (repos None) or only ``repos`` (full names)."""
        with self.state.lock:
            user = self.state.user(account)
            user.type = account_type or user.type
            inst = Installation(installation_id, user, set(repos) if repos is not None else None)
            self.state.installations[installation_id] = inst
        return inst

    def mint_token(self, installation_id: int) -> str:
        """A live installation token without an HTTP round trip (not counted in ``tokens_minted``)."""
        inst = self.state.installations[installation_id]
        return self.state.mint_token(inst, None, None, record=False).token

    def revoke_tokens(self) -> None:
        """Make every token issued so far dead, as if it had expired."""
        with self.state.lock:
            for token in self.state.tokens.values():
                token.revoked = True

    def fail_next(self, method: str, path_pattern: str, status: int = 502, *, times: int = 1,
                  body: dict | None = None, headers: dict[str, str] | None = None) -> None:
        """The next ``times`` requests matching method (or ``*``) and path (regex search) get ``status``."""
        with self.state.lock:
            failure = Failure(method.upper(), re.compile(path_pattern), status, times, body,
                              dict(headers or {}))
            self.state.failures.append(failure)

    def stall_next(self, method: str, path_pattern: str, seconds: float, *, times: int = 1) -> None:
        """The next ``times`` matching requests wait ``seconds`` before they are served (a slow push)."""
        with self.state.lock:
            self.state.failures.append(Failure(method.upper(), re.compile(path_pattern), 0, times, None, {},
                                               delay=seconds))

    def rate_limit_next(self, method: str, path_pattern: str, *, times: int = 1, reset_in: int = 60) -> None:
        """GitHub's primary rate limit answer: 403 with ``x-ratelimit-remaining: 0`` and a reset time."""
        reset = str(int(time.time()) + reset_in)
        self.fail_next(method, path_pattern, 403, times=times,
                       body={"message": "API rate limit exceeded for installation.",
                             "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"},
                       headers={"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0",
                                "x-ratelimit-used": "5000", "x-ratelimit-reset": reset,
                                "x-ratelimit-resource": "core"})

    # -- events from the outside world ------------------------------------------------------------

    def deliver(self, event: str, payload: dict, delivery_id: str | None = None) -> int | None:
        """Sign and POST ``payload`` as ``event`` now; the receiver's status (None if unreachable)."""
        return self.hooks.send(event, payload, delivery_id).status

    def label_issue(self, full_name: str, number: int, label: str, sender_login: str,
                    delivery_id: str | None = None) -> int | None:
        """A person adds ``label``: recorded on the issue, then ``issues.labeled`` is delivered."""
        state = self.state
        with state.lock:
            repo, user = state.repo(full_name), state.user(sender_login)
            issue = repo.issues[number]
            lab = state.ensure_label(repo, label)
            if lab.name not in issue.labels:
                issue.labels.append(lab.name)
            kind = "pull_request" if issue.is_pull else "issues"
            payload = {"action": "labeled", "label": label_json(state, repo, lab),
                       "issue": issue_json(state, repo, issue), **sender_and_repo(state, repo, user)}
        if kind == "pull_request":
            payload.pop("issue")
            payload.update(number=number, pull_request=pull_json(state, repo, repo.pulls[number]))
        return self.deliver(kind, payload, delivery_id)

    def unlabel_issue(self, full_name: str, number: int, label: str, sender_login: str,
                      delivery_id: str | None = None) -> int | None:
        """A person removes ``label``: gone from the issue, then ``issues.unlabeled`` is delivered (nothing
        happens, as on GitHub, when the issue did not have it)."""
        state = self.state
        with state.lock:
            repo, user = state.repo(full_name), state.user(sender_login)
            issue = repo.issues[number]
            lab = state.ensure_label(repo, label)
            if lab.name not in issue.labels:
                return None
            issue.labels.remove(lab.name)
            payload = {"action": "unlabeled", "label": label_json(state, repo, lab),
                       "issue": issue_json(state, repo, issue), **sender_and_repo(state, repo, user)}
        return self.deliver("issues", payload, delivery_id)

    def comment_as(self, full_name: str, number: int, body: str, login: str,
                   delivery_id: str | None = None) -> int | None:
        """A person comments: recorded, then ``issue_comment.created`` is delivered."""
        state = self.state
        with state.lock:
            repo, user = state.repo(full_name), state.user(login)
            comment = state.add_comment(repo, number, body, user)
            payload = {"action": "created", "issue": issue_json(state, repo, repo.issues[number]),
                       "comment": comment_json(state, repo, comment), **sender_and_repo(state, repo, user)}
        return self.deliver("issue_comment", payload, delivery_id)

    @property
    def deliveries(self) -> list[Delivery]:
        return list(self.hooks.deliveries)

    def wait_for_delivery(self, event: str, action: str | None = None, count: int = 1,
                          timeout: float = 10.0) -> list[Delivery]:
        return self.hooks.wait_for(event, action, count, timeout)

    # -- inspection -------------------------------------------------------------------------------

    def issue(self, full_name: str, number: int) -> Issue:
        return self.state.repo(full_name).issues[number]

    def issues(self, full_name: str) -> list[Issue]:
        """Every issue of the repo by number, open or closed; pull requests' issue halves too (``is_pull``)."""
        with self.state.lock:
            return sorted(self.state.repo(full_name).issues.values(), key=lambda issue: issue.number)

    def comments(self, full_name: str, number: int) -> list[Comment]:
        return self.state.comments_on(self.state.repo(full_name), number)

    def pulls(self, full_name: str) -> list[Pull]:
        return sorted(self.state.repo(full_name).pulls.values(), key=lambda p: p.number)

    def requests(self, method: str | None = None, path: str | None = None) -> list[RequestRecord]:
        """Logged requests, filtered by method and a path regex."""
        with self.state.lock:
            return [r for r in self.state.requests if (method is None or r.method == method.upper())
                    and (path is None or re.search(path, r.path))]

    @property
    def tokens_minted(self) -> list[Token]:
        """Tokens minted through ``POST /app/installations/{id}/access_tokens``."""
        return list(self.state.tokens_minted)

    def clone_url(self, full_name: str) -> str:
        return f"{self.url}/git/{full_name}.git"

    def git(self, full_name: str, *args: str) -> str:
        """Run git against the repo's bare repository; stdout."""
        return bare_repo.git(self.state.repo(full_name).path, *args)

    def branches(self, full_name: str) -> list[str]:
        return bare_repo.branches(self.state.repo(full_name).path)

    def branch_sha(self, full_name: str, branch: str) -> str | None:
        return bare_repo.rev_parse(self.state.repo(full_name).path, f"refs/heads/{branch}")

    def branch_files(self, full_name: str, branch: str) -> dict[str, str]:
        return bare_repo.files_at(self.state.repo(full_name).path, branch)

    def branch_commits(self, full_name: str, branch: str, limit: int = 100) -> list[dict[str, str]]:
        """Newest first: sha, author_name, author_email, date, message."""
        return bare_repo.commits(self.state.repo(full_name).path, branch, limit)

    def commit_files(self, full_name: str, branch: str, files: Mapping[str, str | bytes | None],
                     message: str = "Update files", author: tuple[str, str] | None = None, *,
                     base: str | None = None) -> str:
        """Commit straight into the bare repo, like someone else pushing (no webhook). A new branch starts
        from ``base`` (e.g. "main"); without it, it has no history (a PR from it diffs against base's tip)."""
        return bare_repo.commit_files(self.state.repo(full_name).path, branch, files, message, author, base)
