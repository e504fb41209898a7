"""What people and CI do on the GitHub double, as GitHubDouble helpers: review, push, merge, close, run checks.

Each helper changes state like the REST route would, then delivers the webhooks GitHub would send at once,
in order, in the caller's thread (like ``comment_as``); the sender is the acting person (CI: the repo
owner unless ``login`` says otherwise). Invalid requests raise the route's ApiError (e.g. a review comment
on a line outside the diff: 422 "Line could not be resolved").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from . import bare_repo, github_backlog, github_checks, github_reviews
from .github_http import ApiError
from .github_push import push_events
from .github_records import Annotation, CheckRun, Review, ReviewComment
from .github_state import Pull, Repo, State
from .webhooks import WebhookSender

Events = list[tuple[str, dict]]
HELPER_STATES = {"approved": "APPROVED", "changes_requested": "CHANGES_REQUESTED", "commented": "COMMENTED"}


class PeopleMixin:
    state: State
    hooks: WebhookSender

    def _send(self, events: Events) -> list[int | None]:
        return [self.hooks.send(event, payload).status for event, payload in events]

    def _pull(self, full_name: str, number: int) -> tuple[Repo, Pull]:
        repo = self.state.repo(full_name)
        return repo, repo.pulls[number]

    # -- reviews --------------------------------------------------------------------------------------

    def review(self, full_name: str, number: int, login: str, state: str = "changes_requested", body: str = "",
               comments: Iterable[tuple[str, int, str] | Mapping] = ()) -> Review:
        """``login`` submits a review: ``pull_request_review.submitted``, then one
        ``pull_request_review_comment.created`` per comment. Comments are (path, line, body) on the RIGHT side,
        or dicts as the REST API takes them (``side``, ``start_line``...)."""
        if state not in HELPER_STATES:
            raise ValueError(f"state must be one of {sorted(HELPER_STATES)}")
        repo, pull = self._pull(full_name, number)
        specs = [dict(c) if isinstance(c, Mapping) else {"path": c[0], "line": c[1], "body": c[2]} for c in comments]
        review, events = github_reviews.submit_review(self.state, repo, pull, self.state.user(login),
                                                      HELPER_STATES[state], body, specs)
        self._send(events)
        return review

    def review_comment(self, full_name: str, number: int, login: str, path: str, line: int, body: str,
                       in_reply_to: int | None = None, *, side: str = "RIGHT",
                       start_line: int | None = None) -> ReviewComment:
        """A lone review comment (or a reply to comment ``in_reply_to``; then path/line are the thread's):
        ``pull_request_review_comment.created``, then ``pull_request_review.submitted`` (commented, empty)."""
        repo, pull = self._pull(full_name, number)
        target = repo.review_comments[in_reply_to] if in_reply_to is not None else None
        spec = {"path": path, "line": line, "side": side, "start_line": start_line, "body": body}
        comment, events = github_reviews.add_comment(self.state, repo, pull, self.state.user(login), spec, target)
        self._send(events)
        return comment

    def resolve_thread(self, full_name: str, comment_id: int, login: str | None = None, *,
                       resolved: bool = True) -> list[int | None]:
        """Resolve (or unresolve) the thread holding ``comment_id``: ``pull_request_review_thread.resolved``."""
        repo = self.state.repo(full_name)
        comment = repo.review_comments[comment_id]
        root = repo.review_comments[comment.in_reply_to_id or comment.id]
        user = self.state.user(login or repo.owner.login)
        return self._send(github_reviews.set_resolved(self.state, repo, root, user, resolved))

    def reviews(self, full_name: str, number: int) -> list[Review]:
        repo = self.state.repo(full_name)
        return sorted((r for r in repo.reviews.values() if r.number == number), key=lambda r: r.id)

    def review_comments(self, full_name: str, number: int) -> list[ReviewComment]:
        """Published, undeleted review comments of a PR, oldest first."""
        repo = self.state.repo(full_name)
        return sorted((c for c in repo.review_comments.values()
                       if c.number == number and not c.deleted and not c.pending), key=lambda c: c.id)

    # -- CI -------------------------------------------------------------------------------------------

    def start_check(self, full_name: str, sha: str, name: str, *, app: str = "github-actions",
                    login: str | None = None) -> CheckRun:
        """An in-progress check run (``check_run.created``) on ``sha`` (a sha or branch)."""
        repo = self.state.repo(full_name)
        sender = self.state.user(login or repo.owner.login)
        run, events = github_checks.start_check(self.state, repo, sha, name, sender, app)
        self._send(events)
        return run

    def complete_check(self, full_name: str, sha: str, name: str, conclusion: str = "failure",
                       title: str | None = None, summary: str | None = None, text: str | None = None, *,
                       annotations: Sequence[Annotation | Mapping] = (), app: str = "github-actions",
                       branch: str | None = None, login: str | None = None,
                       details_url: str | None = None) -> CheckRun:
        """CI finishes check ``name`` on ``sha`` (a sha or branch): ``check_run.completed``, then
        ``check_suite.completed`` once none of the suite's runs is pending. Annotations are Annotation or dicts
        of its fields (path, start_line, end_line, message, annotation_level...)."""
        repo = self.state.repo(full_name)
        notes = [a if isinstance(a, Annotation) else Annotation(**a) for a in annotations]
        run, events = github_checks.complete_check(
            self.state, repo, sha, name, conclusion, self.state.user(login or repo.owner.login), title=title,
            summary=summary, text=text, annotations=notes, app_slug=app, branch=branch, details_url=details_url)
        self._send(events)
        return run

    def check_runs(self, full_name: str, sha: str | None = None) -> list[CheckRun]:
        repo = self.state.repo(full_name)
        wanted = bare_repo.rev_parse(repo.path, sha) if sha else None
        return sorted((r for r in repo.check_runs.values() if wanted is None or r.head_sha == wanted),
                      key=lambda r: r.id)

    # -- the backlog ----------------------------------------------------------------------------------

    def merge_pull(self, full_name: str, number: int, login: str, method: str = "merge") -> str:
        """``login`` merges (merge commit; ``squash``; ``rebase`` = fast-forward): ``push``,
        ``pull_request.closed`` (merged) and ``issues.closed`` for issues the body closes. The new base sha."""
        repo, pull = self._pull(full_name, number)
        sha, events = github_backlog.merge(self.state, repo, pull, self.state.user(login), method)
        self._send(events)
        return sha

    def close_issue(self, full_name: str, number: int, login: str, reason: str = "completed") -> list[int | None]:
        """``issues.closed`` (``state_reason`` completed|not_planned), or ``pull_request.closed`` unmerged."""
        repo = self.state.repo(full_name)
        return self._send(github_backlog.set_issue_state(self.state, repo, repo.issues[number], True,
                                                         self.state.user(login), reason))

    def reopen_issue(self, full_name: str, number: int, login: str) -> list[int | None]:
        repo = self.state.repo(full_name)
        if repo.issues[number].is_pull and repo.pulls[number].merged:
            raise ApiError(422, "Can not reopen a merged pull request")
        return self._send(github_backlog.set_issue_state(self.state, repo, repo.issues[number], False,
                                                         self.state.user(login)))

    def convert_to_draft(self, full_name: str, number: int, login: str) -> list[int | None]:
        repo, pull = self._pull(full_name, number)
        return self._send(github_backlog.set_draft(self.state, repo, pull, True, self.state.user(login)))

    def mark_ready(self, full_name: str, number: int, login: str) -> list[int | None]:
        repo, pull = self._pull(full_name, number)
        return self._send(github_backlog.set_draft(self.state, repo, pull, False, self.state.user(login)))

    def request_review(self, full_name: str, number: int, reviewers: Sequence[str], login: str) -> list[int | None]:
        """``login`` requests reviews: ``pull_request.review_requested`` per new reviewer."""
        repo, pull = self._pull(full_name, number)
        return self._send(github_backlog.request_reviewers(self.state, repo, pull, list(reviewers),
                                                           self.state.user(login)))

    def push_as(self, full_name: str, branch: str, files: Mapping[str, str | bytes | None], login: str,
                message: str = "Update files") -> str:
        """``login`` pushes a commit of ``files`` to ``branch`` (a new branch starts from the default one):
        ``push``, and ``pull_request.synchronize`` (``before``/``after``) for open PRs whose head it is."""
        repo = self.state.repo(full_name)
        user = self.state.user(login)
        with self.state.lock:
            before = bare_repo.refs(repo.path)
            sha = bare_repo.commit_files(repo.path, branch, files, message,
                                         (login, github_backlog.noreply_email(user)), repo.default_branch)
            events = push_events(self.state, repo, before, user, github_backlog.noreply_email(user))
        self._send(events)
        return sha
