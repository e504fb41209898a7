"""Merging, closing, drafts and review requests in the GitHub double: shared logic and REST routes.

A merge writes a real commit into the bare repo's base branch (merge commit, squash, or fast-forward
for ``rebase``), then sends ``push``, ``pull_request.closed`` (``merged: true``) and, when the base is the
default branch, ``issues.closed`` for each issue the PR body closes (``Fixes #3``, ``closes acme/x#4``...).
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import bare_repo
from .github_http import ApiError, double_of, emit_all, read_json, require_repo, validation_failed
from .github_json import hook_payload, issue_json, pull_json, user_json
from .github_push import push_events
from .github_review_routes import find_pull
from .github_state import Issue, Pull, Repo, State, User, now

Events = list[tuple[str, dict]]
_CLOSING = re.compile(r"\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)\b:?\s+(?:([\w.-]+)/([\w.-]+))?#(\d+)\b",
                      re.IGNORECASE)


def noreply_email(user: User) -> str:
    return f"{user.id}+{user.login}@users.noreply.github.com"


def closing_references(state: State, repo: Repo, body: str | None) -> list[tuple[Repo, Issue]]:
    """Issues a PR body closes on merge: same-repo ``#N`` or ``owner/name#N`` of a repo the double has."""
    found: list[tuple[Repo, Issue]] = []
    for owner, name, number in _CLOSING.findall(body or ""):
        target = state.find_repo(owner, name) if owner else repo
        issue = target.issues.get(int(number)) if target else None
        if target and issue and not issue.is_pull and (target, issue) not in found:
            found.append((target, issue))
    return found


def set_issue_state(state: State, repo: Repo, issue: Issue, closed: bool, sender: User,
                    reason: str | None = None) -> Events:
    """Close or reopen an issue or PR: ``issues.closed``/``reopened`` or ``pull_request.closed``/``reopened``."""
    with state.lock:
        if (issue.state == "closed") == closed:
            return []
        issue.state, issue.updated_at = ("closed" if closed else "open"), now()
        issue.closed_at = now() if closed else None
        action = "closed" if closed else "reopened"
        if issue.is_pull:
            return [("pull_request", hook_payload(state, repo, action, sender, number=issue.number,
                                                  pull_request=pull_json(state, repo, repo.pulls[issue.number])))]
        issue.state_reason = (reason or "completed") if closed else "reopened"
        return [("issues", hook_payload(state, repo, action, sender, issue=issue_json(state, repo, issue)))]


def merge(state: State, repo: Repo, pull: Pull, user: User, method: str = "merge", sha: str | None = None,
          title: str | None = None, message: str | None = None) -> tuple[str, Events]:
    """Merge like GitHub's button; returns (new base tip, events)."""
    with state.lock:
        issue = repo.issues[pull.number]
        head = bare_repo.rev_parse(repo.path, f"refs/heads/{pull.head_ref}")
        base = bare_repo.rev_parse(repo.path, f"refs/heads/{pull.base_ref}")
        if pull.merged or issue.state != "open" or head is None or base is None:
            raise ApiError(405, "Pull Request is not mergeable")
        if sha and sha != head:
            raise ApiError(409, "Head branch was modified. Review and try the merge again.")
        if method not in ("merge", "squash", "rebase"):
            raise validation_failed("PullRequest", "merge_method")
        if method == "rebase":
            if not bare_repo.is_ancestor(repo.path, base, head):
                raise ApiError(405, "This branch can't be rebased")
            new = head
        else:
            tree = bare_repo.merge_tree(repo.path, base, head)
            if tree is None:
                raise ApiError(405, "Pull Request is not mergeable")
            if method == "merge":
                parents = [base, head]
                headline = title or f"Merge pull request #{pull.number} from {repo.owner.login}/{pull.head_ref}"
                text = issue.title if message is None else message
            else:
                parents, headline = [base], title or f"{issue.title} (#{pull.number})"
                logs = bare_repo.commits(repo.path, head, 100, base)
                text = "\n\n".join(f"* {c['message']}" for c in reversed(logs)) if message is None else message
            new = bare_repo.write_commit(repo.path, tree, parents, f"{headline}\n\n{text}".strip(),
                                         (user.login, noreply_email(user)))
        before = bare_repo.refs(repo.path)
        bare_repo.git(repo.path, "update-ref", f"refs/heads/{pull.base_ref}", new, base)
        pull.merged, pull.merged_at, pull.merged_by = True, now(), user
        pull.merge_commit_sha, pull.merged_base_sha, pull.head_sha = new, base, head
        issue.state, issue.closed_at, issue.updated_at = "closed", now(), now()
        events = push_events(state, repo, before, user, noreply_email(user))
        events.append(("pull_request", hook_payload(state, repo, "closed", user, number=pull.number,
                                                    pull_request=pull_json(state, repo, pull))))
        if pull.base_ref == repo.default_branch:
            for target, linked in closing_references(state, repo, issue.body):
                events += set_issue_state(state, target, linked, True, user)
        return new, events


def set_draft(state: State, repo: Repo, pull: Pull, draft: bool, sender: User) -> Events:
    with state.lock:
        if pull.draft == draft:
            return []
        pull.draft = draft
        return [("pull_request", hook_payload(state, repo, "converted_to_draft" if draft else "ready_for_review",
                                              sender, number=pull.number, pull_request=pull_json(state, repo, pull)))]


def _is_collaborator(repo: Repo, login: str) -> bool:
    return login.lower() == repo.owner.login.lower() or repo.collaborators.get(login.lower(), "none") != "none"


def request_reviewers(state: State, repo: Repo, pull: Pull, logins: list[str], sender: User,
                      remove: bool = False) -> Events:
    """Add (``review_requested`` each) or remove (``review_request_removed`` each) requested reviewers."""
    with state.lock:
        author = repo.issues[pull.number].user
        events: Events = []
        for login in logins:
            user = state.user(login)
            if remove:
                if user.login not in pull.requested_reviewers:
                    continue
                pull.requested_reviewers.remove(user.login)
            else:
                if user is author:
                    raise ApiError(422, "Review cannot be requested from pull request author.")
                if not _is_collaborator(repo, login):
                    raise ApiError(422, "Reviews may only be requested from collaborators. One or more of the users "
                                   f"or teams you specified is not a collaborator of the {repo.full_name} repository.")
                if user.login in pull.requested_reviewers:
                    continue
                pull.requested_reviewers.append(user.login)
            events.append(("pull_request", hook_payload(
                state, repo, "review_request_removed" if remove else "review_requested", sender, number=pull.number,
                pull_request=pull_json(state, repo, pull), requested_reviewer=user_json(state, user))))
        return events


async def merge_route(request: Request) -> Response:
    repo, _ = require_repo(request)
    state = double_of(request).state
    pull = find_pull(repo, request)
    if request.method == "GET":  # "Check if a pull request has been merged"
        return Response(status_code=204 if pull.merged else 404)
    body = await read_json(request)
    sha, events = merge(state, repo, pull, state.bot, str(body.get("merge_method") or "merge"), body.get("sha"),
                        body.get("commit_title"), body.get("commit_message"))
    emit_all(request, events)
    return JSONResponse({"sha": sha, "merged": True, "message": "Pull Request successfully merged"})


async def requested_reviewers_route(request: Request) -> JSONResponse:
    repo, _ = require_repo(request)
    state = double_of(request).state
    pull = find_pull(repo, request)
    if request.method == "GET":
        return JSONResponse({"users": [user_json(state, state.user(login)) for login in pull.requested_reviewers],
                             "teams": []})
    body = await read_json(request)
    logins = body.get("reviewers") or []
    if not isinstance(logins, list) or body.get("team_reviewers"):
        raise ApiError(422, "Reviews may only be requested from collaborators. One or more of the users or teams "
                       f"you specified is not a collaborator of the {repo.full_name} repository.")
    events = request_reviewers(state, repo, pull, [str(x) for x in logins], state.bot, request.method == "DELETE")
    emit_all(request, events)
    return JSONResponse(pull_json(state, repo, pull), 201 if request.method == "POST" else 200)


P = "/repos/{owner}/{repo}/pulls/{number:int}"
routes = [
    Route(P + "/merge", merge_route, methods=["GET", "PUT"]),
    Route(P + "/requested_reviewers", requested_reviewers_route, methods=["GET", "POST", "DELETE"]),
]
