"""The GitHub double's repository REST routes: repo, permissions, issues, comments, reactions, labels.

Writes made with an installation token are the App's bot's, and send the webhooks GitHub would.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import bare_repo
from .github_http import ApiError, double_of, emit, paginate, read_json, require_repo, validation_failed
from .github_json import (
    REACTIONS,
    comment_json,
    issue_json,
    label_json,
    permission_json,
    pull_json,
    reaction_json,
    repo_json,
    user_json,
)
from .github_oauth import repo_for_user, user_of
from .github_state import Comment, Issue, Reaction, Repo, now


def _issue(repo: Repo, request: Request) -> Issue:
    issue = repo.issues.get(request.path_params["number"])
    if issue is None:
        raise ApiError(404, "Not Found")
    return issue


def _comment(request: Request, repo: Repo) -> Comment:
    comment = double_of(request).state.comments.get(request.path_params["comment_id"])
    if comment is None or comment.deleted or comment.repo != repo.full_name:
        raise ApiError(404, "Not Found")
    return comment


async def get_repo(request: Request) -> JSONResponse:
    login = user_of(request)
    if login is not None:  # a user's token (the OAuth sign-in): what that user may see
        return repo_for_user(request, login)
    repo, _ = require_repo(request)
    return JSONResponse(repo_json(double_of(request).state, repo))


async def get_branch(request: Request) -> JSONResponse:
    """Like GitHub: the branch's name and head commit; 404 "Branch not found" for a branch that is not there."""
    repo, _ = require_repo(request)
    name = request.path_params["branch"]
    sha = bare_repo.rev_parse(repo.path, f"refs/heads/{name}") if not name.startswith("-") else None
    if sha is None:
        raise ApiError(404, "Branch not found")
    return JSONResponse({"name": name, "commit": {"sha": sha}, "protected": False})


async def get_permission(request: Request) -> JSONResponse:
    """Like GitHub: ``permission`` folds maintain->write and triage->read, ``role_name`` does not."""
    repo, _ = require_repo(request)
    state = double_of(request).state
    login = request.path_params["username"]
    role = repo.collaborators.get(login.lower())
    if role is None:
        raise ApiError(404, "Not Found")
    return JSONResponse(permission_json(state, repo, state.user(login), role))


async def get_issue(request: Request) -> JSONResponse:
    repo, _ = require_repo(request)
    return JSONResponse(issue_json(double_of(request).state, repo, _issue(repo, request)))


def set_labels(request: Request, repo: Repo, issue: Issue, names: list[str]) -> None:
    """Replace an issue's labels, sending labeled/unlabeled for each difference."""
    state = double_of(request).state
    wanted = []
    for name in names:
        label = state.ensure_label(repo, name)
        if label.name not in wanted:
            wanted.append(label.name)
    added = [n for n in wanted if n not in issue.labels]
    removed = [n for n in issue.labels if n not in wanted]
    issue.labels = wanted
    issue.updated_at = now()
    for action, changed in (("labeled", added), ("unlabeled", removed)):
        for name in changed:
            changed_label = label_json(state, repo, repo.labels[name.lower()])
            _emit_issue(request, repo, issue, action, label=changed_label)


def _emit_issue(request: Request, repo: Repo, issue: Issue, action: str, **extra: object) -> None:
    state = double_of(request).state
    if issue.is_pull:  # PR labels and state changes are pull_request events
        emit(request, repo, "pull_request", action, state.bot, number=issue.number,
             pull_request=pull_json(state, repo, repo.pulls[issue.number]), **extra)
    else:
        emit(request, repo, "issues", action, state.bot, issue=issue_json(state, repo, issue), **extra)


def apply_title_body(issue: Issue, body: dict) -> dict:
    """Apply title/body edits (the old body goes to ``history``); GitHub's ``changes`` for the ``edited`` webhook."""
    if "title" in body and (not isinstance(body["title"], str) or not body["title"].strip()):
        raise validation_failed("Issue", "title", "missing_field" if not body["title"] else "invalid")
    if "body" in body and body["body"] is not None and not isinstance(body["body"], str):
        raise validation_failed("Issue", "body")
    changes = {k: {"from": getattr(issue, k)} for k in ("title", "body")
               if k in body and body[k] != getattr(issue, k)}
    if "body" in changes:
        issue.history.append(issue.body)
    for key in changes:
        setattr(issue, key, body[key])
    return changes


def label_names(raw: object) -> list[str]:
    if not isinstance(raw, list):
        raise validation_failed("Label", "labels")
    return [item["name"] if isinstance(item, dict) else str(item) for item in raw]


def _assignees(repo: Repo, raw: object) -> list[str]:
    """Logins that may be assigned (the owner or a collaborator), as GitHub spells them; 422 for anyone else."""
    if not isinstance(raw, list) or not all(isinstance(login, str) for login in raw):
        raise validation_failed("Issue", "assignees")
    for login in raw:
        if login.lower() != repo.owner.login.lower() and repo.collaborators.get(login.lower(), "none") == "none":
            raise validation_failed("Issue", "assignees")
    return list(dict.fromkeys(raw))


async def create_issue(request: Request) -> JSONResponse:
    """``POST /repos/{o}/{r}/issues``: the caller (the bot, with an installation token) opens an issue.

    Sends ``issues.opened``, then ``labeled`` for each label and ``assigned`` for each assignee, like GitHub.
    """
    repo, _ = require_repo(request)
    state = double_of(request).state
    body = await read_json(request)
    title = body.get("title")
    if isinstance(title, int) and not isinstance(title, bool):  # GitHub takes a number as the title too
        title = str(title)
    if not isinstance(title, str) or not title.strip():
        raise validation_failed("Issue", "title", "missing_field")
    text = body.get("body")
    if text is not None and not isinstance(text, str):
        raise validation_failed("Issue", "body")
    names = label_names(body.get("labels") or [])
    raw_assignees = body.get("assignees")
    if raw_assignees is None and body.get("assignee"):
        raw_assignees = [body["assignee"]]
    logins = _assignees(repo, raw_assignees or [])
    issue = state.new_issue(repo, title, text, state.bot, labels=names)
    with state.lock:
        issue.assignees = [state.user(login).login for login in logins]
        opened = issue_json(state, repo, issue)
    emit(request, repo, "issues", "opened", state.bot, issue=opened)
    for name in issue.labels:
        _emit_issue(request, repo, issue, "labeled", label=label_json(state, repo, repo.labels[name.lower()]))
    for login in issue.assignees:
        _emit_issue(request, repo, issue, "assigned", assignee=user_json(state, state.user(login)))
    return JSONResponse(issue_json(state, repo, issue), 201)


_ISSUE_SORTS = {
    "created": lambda state, repo, issue: (issue.created_at, issue.number),
    "updated": lambda state, repo, issue: (issue.updated_at, issue.number),
    "comments": lambda state, repo, issue: (len(state.comments_on(repo, issue.number)), issue.number),
}


async def list_issues(request: Request) -> JSONResponse:
    """``GET /repos/{o}/{r}/issues``: issues and pull requests (with ``pull_request``), newest first by default.

    Filters: ``state`` (open|closed|all), ``creator`` (a login), ``labels`` (comma-separated; all must match);
    ``sort`` (created|updated|comments), ``direction`` (desc|asc), ``per_page`` and ``page``.
    """
    repo, _ = require_repo(request)
    state = double_of(request).state
    query = request.query_params
    wanted, sort, direction = query.get("state", "open"), query.get("sort", "created"), query.get("direction", "desc")
    if wanted not in ("open", "closed", "all"):
        raise validation_failed("Issue", "state")
    if sort not in _ISSUE_SORTS:
        raise validation_failed("Issue", "sort")
    if direction not in ("asc", "desc"):
        raise validation_failed("Issue", "direction")
    creator = query.get("creator")
    labels = {name.strip().lower() for name in query.get("labels", "").split(",") if name.strip()}
    with state.lock:
        found = [issue for issue in repo.issues.values()
                 if (wanted == "all" or issue.state == wanted)
                 and (creator is None or issue.user.login.lower() == creator.lower())
                 and labels <= {name.lower() for name in issue.labels}]
        found.sort(key=lambda issue: _ISSUE_SORTS[sort](state, repo, issue), reverse=direction == "desc")
        items = [issue_json(state, repo, issue) for issue in found]
    page, headers = paginate(request, items)
    return JSONResponse(page, headers=headers)


async def patch_issue(request: Request) -> JSONResponse:
    repo, _ = require_repo(request)
    issue = _issue(repo, request)
    body = await read_json(request)
    changes = apply_title_body(issue, body)
    if changes:
        issue.updated_at = now()
        _emit_issue(request, repo, issue, "edited", changes=changes)
    if "labels" in body:
        set_labels(request, repo, issue, label_names(body["labels"]))
    state_change = body.get("state")
    if state_change in ("open", "closed") and state_change != issue.state:
        issue.state = state_change
        issue.closed_at = now() if state_change == "closed" else None
        default_reason = "completed" if state_change == "closed" else "reopened"
        issue.state_reason = body.get("state_reason") or default_reason
        _emit_issue(request, repo, issue, "closed" if state_change == "closed" else "reopened")
    return JSONResponse(issue_json(double_of(request).state, repo, issue))


async def list_comments(request: Request) -> JSONResponse:
    repo, _ = require_repo(request)
    state = double_of(request).state
    _issue(repo, request)
    items = [comment_json(state, repo, c) for c in state.comments_on(repo, request.path_params["number"])]
    page, headers = paginate(request, items)
    return JSONResponse(page, headers=headers)


async def create_comment(request: Request) -> JSONResponse:
    repo, _ = require_repo(request)
    state = double_of(request).state
    issue = _issue(repo, request)
    body = (await read_json(request)).get("body")
    if not isinstance(body, str) or not body:
        raise validation_failed("IssueComment", "body", "missing_field")
    comment = state.add_comment(repo, issue.number, body, state.bot)
    emit(request, repo, "issue_comment", "created", state.bot, issue=issue_json(state, repo, issue),
         comment=comment_json(state, repo, comment))
    return JSONResponse(comment_json(state, repo, comment), 201)


async def comment_by_id(request: Request) -> Response:
    repo, _ = require_repo(request)
    state = double_of(request).state
    comment = _comment(request, repo)
    issue = repo.issues[comment.issue_number]
    if request.method == "GET":
        return JSONResponse(comment_json(state, repo, comment))
    if request.method == "DELETE":
        comment.deleted = True
        emit(request, repo, "issue_comment", "deleted", state.bot, issue=issue_json(state, repo, issue),
             comment=comment_json(state, repo, comment))
        return Response(status_code=204)
    body = (await read_json(request)).get("body")
    if not isinstance(body, str) or not body:
        raise validation_failed("IssueComment", "body", "missing_field")
    if body != comment.body:
        comment.history.append(comment.body)
        changes = {"body": {"from": comment.body}}
        comment.body, comment.updated_at = body, now()
        emit(request, repo, "issue_comment", "edited", state.bot, changes=changes,
             issue=issue_json(state, repo, issue), comment=comment_json(state, repo, comment))
    return JSONResponse(comment_json(state, repo, comment))


async def _react(request: Request, reactions: list[Reaction]) -> JSONResponse:
    state = double_of(request).state
    content = (await read_json(request)).get("content")
    if content not in REACTIONS:
        raise validation_failed("Reaction", "content")
    with state.lock:
        existing = next((r for r in reactions if r.user is state.bot and r.content == content), None)
        if existing is not None:
            return JSONResponse(reaction_json(state, existing), 200)
        reaction = Reaction(state.next_id(), state.bot, content)
        reactions.append(reaction)
    return JSONResponse(reaction_json(state, reaction), 201)


async def react_issue(request: Request) -> JSONResponse:
    repo, _ = require_repo(request)
    return await _react(request, _issue(repo, request).reactions)


async def react_comment(request: Request) -> JSONResponse:
    repo, _ = require_repo(request)
    return await _react(request, _comment(request, repo).reactions)


async def issue_labels(request: Request) -> JSONResponse:
    repo, _ = require_repo(request)
    state = double_of(request).state
    issue = _issue(repo, request)
    if request.method == "POST":
        body = await read_json(request)
        names = label_names(body.get("labels", []))
        set_labels(request, repo, issue, issue.labels + names)
    return JSONResponse([label_json(state, repo, repo.labels[n.lower()]) for n in issue.labels])


async def remove_issue_label(request: Request) -> JSONResponse:
    repo, _ = require_repo(request)
    state = double_of(request).state
    issue = _issue(repo, request)
    name = request.path_params["name"]
    if name.lower() not in [n.lower() for n in issue.labels]:
        raise ApiError(404, "Label does not exist")
    set_labels(request, repo, issue, [n for n in issue.labels if n.lower() != name.lower()])
    return JSONResponse([label_json(state, repo, repo.labels[n.lower()]) for n in issue.labels])


async def get_label(request: Request) -> JSONResponse:
    repo, _ = require_repo(request)
    label = repo.labels.get(request.path_params["name"].lower())
    if label is None:
        raise ApiError(404, "Not Found")
    return JSONResponse(label_json(double_of(request).state, repo, label))


async def create_label(request: Request) -> JSONResponse:
    repo, _ = require_repo(request)
    state = double_of(request).state
    body = await read_json(request)
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise validation_failed("Label", "name", "missing_field")
    if name.lower() in repo.labels:
        raise validation_failed("Label", "name", "already_exists")
    label = state.ensure_label(repo, name)
    label.color = str(body.get("color") or label.color).lstrip("#")
    label.description = body.get("description")
    return JSONResponse(label_json(state, repo, label), 201)


R = "/repos/{owner}/{repo}"
routes = [
    Route(R, get_repo),
    Route(R + "/branches/{branch:path}", get_branch),
    Route(R + "/collaborators/{username}/permission", get_permission),
    Route(R + "/issues", list_issues),
    Route(R + "/issues", create_issue, methods=["POST"]),
    Route(R + "/issues/comments/{comment_id:int}", comment_by_id, methods=["GET", "PATCH", "DELETE"]),
    Route(R + "/issues/comments/{comment_id:int}/reactions", react_comment, methods=["POST"]),
    Route(R + "/issues/{number:int}", get_issue),
    Route(R + "/issues/{number:int}", patch_issue, methods=["PATCH"]),
    Route(R + "/issues/{number:int}/comments", list_comments),
    Route(R + "/issues/{number:int}/comments", create_comment, methods=["POST"]),
    Route(R + "/issues/{number:int}/reactions", react_issue, methods=["POST"]),
    Route(R + "/issues/{number:int}/labels", issue_labels, methods=["GET", "POST"]),
    Route(R + "/issues/{number:int}/labels/{name:path}", remove_issue_label, methods=["DELETE"]),
    Route(R + "/labels/{name:path}", get_label),
    Route(R + "/labels", create_label, methods=["POST"]),
]
