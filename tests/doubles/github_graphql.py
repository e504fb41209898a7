"""The GitHub double's GraphQL endpoint: the few operations Mull sends, recognised loosely by field name.

Supported: ``markPullRequestReadyForReview``, ``convertPullRequestToDraft``, ``resolveReviewThread``,
``unresolveReviewThread`` (``input: {pullRequestId|threadId: ...}``, a literal or a ``$variable``) and the
query ``repository(owner:, name:) { pullRequest(number:) { ... reviewThreads(first:) { nodes { ...
comments(first:) { nodes { ... } } } } } }``, answered with every field the double knows whatever the
selection. Anything else gets GraphQL errors. Like GitHub's GraphQL, bot logins lack REST's ``[bot]``.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .github_backlog import set_draft
from .github_diff import anchor, pull_range
from .github_http import double_of, emit_all, read_json, require_token
from .github_json_reviews import graphql_login
from .github_records import ReviewComment
from .github_reviews import set_resolved, thread_comments
from .github_state import Pull, Repo, State, Token, User, iso

_MUTATIONS = ("markPullRequestReadyForReview", "convertPullRequestToDraft", "resolveReviewThread",
              "unresolveReviewThread")
_ARG = re.compile(r'(\w+)\s*:\s*("(?:[^"\\]|\\.)*"|\$\w+|-?\d+)')


def _args(query: str, field: str, variables: dict) -> dict[str, object]:
    """The scalar arguments of ``field(...)`` (nested ``input: {...}`` ones included), variables resolved."""
    match = re.search(rf"\b{field}\s*\(([^()]*)\)", query)
    values: dict[str, object] = {}
    for name, raw in _ARG.findall(match[1] if match else ""):
        if raw.startswith("$"):
            values[name] = variables.get(raw[1:])
        else:
            values[name] = raw[1:-1] if raw.startswith('"') else int(raw)
    return values


def _not_found(path: list[str], message: str, data: dict | None = None) -> JSONResponse:
    return JSONResponse({"data": data if data is not None else {path[0]: None},
                         "errors": [{"type": "NOT_FOUND", "path": path, "message": message}]})


def _actor(user: User) -> dict:
    return {"login": graphql_login(user), "__typename": "Bot" if user.type == "Bot" else "User"}


def _pull_node(state: State, repo: Repo, pull: Pull) -> dict:
    url = f"{state.base_url}/{repo.full_name}/pull/{pull.number}"
    issue = repo.issues[pull.number]
    return {"id": f"PR_{pull.id}", "number": pull.number, "isDraft": pull.draft, "url": url,
            "title": issue.title, "state": "MERGED" if pull.merged else issue.state.upper(),
            "headRefName": pull.head_ref, "baseRefName": pull.base_ref,
            "headRefOid": pull_range(repo, pull)[1]}


def _comment_node(state: State, repo: Repo, pull: Pull, comment: ReviewComment) -> dict:
    where = anchor(repo, pull, comment)
    review = repo.reviews.get(comment.review_id)
    url = f"{state.base_url}/{repo.full_name}/pull/{pull.number}#discussion_r{comment.id}"
    return {"id": f"PRRC_{comment.id}", "databaseId": comment.id, "body": comment.body, "bodyText": comment.body,
            "author": _actor(comment.user), "createdAt": iso(comment.created_at),
            "updatedAt": iso(comment.updated_at), "url": url, "path": comment.path, "line": where.line,
            "originalLine": comment.line, "diffHunk": comment.diff_hunk, "outdated": where.outdated,
            "commit": {"oid": where.commit_id}, "originalCommit": {"oid": comment.commit_id},
            "replyTo": {"id": f"PRRC_{comment.in_reply_to_id}", "databaseId": comment.in_reply_to_id}
            if comment.in_reply_to_id else None,
            "pullRequestReview": {"id": f"PRR_{review.id}", "databaseId": review.id, "state": review.state}
            if review else None}


def _thread_node(state: State, repo: Repo, pull: Pull, root: ReviewComment, first: int) -> dict:
    where = anchor(repo, pull, root)
    comments = thread_comments(repo, root)
    return {"id": f"PRRT_{root.id}", "isResolved": root.resolved, "isOutdated": where.outdated,
            "isCollapsed": root.resolved, "path": root.path, "line": where.line, "originalLine": root.line,
            "startLine": where.start_line, "originalStartLine": root.start_line, "diffSide": root.side,
            "startDiffSide": root.start_side, "subjectType": "LINE", "viewerCanResolve": True,
            "viewerCanUnresolve": True, "resolvedBy": _actor(root.resolved_by) if root.resolved_by else None,
            "comments": {"totalCount": len(comments),
                         "nodes": [_comment_node(state, repo, pull, c) for c in comments[:first]],
                         "pageInfo": {"hasNextPage": len(comments) > first, "endCursor": None}}}


def _query_pull(state: State, token: Token, query: str, variables: dict) -> JSONResponse:
    where = _args(query, "repository", variables)
    owner, name = str(where.get("owner")), str(where.get("name"))
    repo = state.find_repo(owner, name)
    if repo is None or not state.token_covers(token, repo):
        return _not_found(["repository"], f"Could not resolve to a Repository with the name '{owner}/{name}'.")
    number = _args(query, "pullRequest", variables).get("number")
    pull = repo.pulls.get(number) if isinstance(number, int) else None
    if pull is None:
        return _not_found(["repository", "pullRequest"], f"Could not resolve to a PullRequest with the number of "
                          f"{number}.", {"repository": {"pullRequest": None}})
    node = _pull_node(state, repo, pull)
    if "reviewThreads" in query:
        first = int(_args(query, "reviewThreads", variables).get("first") or 100)  # type: ignore[call-overload]
        per_thread = int(_args(query, "comments", variables).get("first") or 100)  # type: ignore[call-overload]
        roots = sorted((c for c in repo.review_comments.values() if c.number == pull.number
                        and c.in_reply_to_id is None and not c.pending and thread_comments(repo, c)),
                       key=lambda c: c.id)
        node["reviewThreads"] = {"totalCount": len(roots),
                                 "nodes": [_thread_node(state, repo, pull, r, per_thread) for r in roots[:first]],
                                 "pageInfo": {"hasNextPage": len(roots) > first, "endCursor": None}}
    return JSONResponse({"data": {"repository": {"pullRequest": node}}})


async def graphql(request: Request) -> JSONResponse:
    token = require_token(request)
    state = double_of(request).state
    body = await read_json(request)
    query, variables = str(body.get("query", "")), body.get("variables") or {}
    mutation = next((m for m in _MUTATIONS if re.search(rf"\b{m}\s*\(", query)), None)
    if mutation is None:
        if re.search(r"\brepository\s*\(", query) and re.search(r"\bpullRequest\s*\(", query):
            return _query_pull(state, token, query, variables)
        return JSONResponse({"errors": [{"type": "UNSUPPORTED", "message": "the GitHub double only supports "
                                         + ", ".join(_MUTATIONS) + " and pullRequest reviewThreads queries"}]})
    args = _args(query, mutation, variables)
    node_id = args.get("threadId" if "Thread" in mutation else "pullRequestId")
    for repo in list(state.repos.values()):
        if not state.token_covers(token, repo):
            continue
        if "Thread" in mutation:
            root = next((c for c in repo.review_comments.values() if f"PRRT_{c.id}" == node_id), None)
            if root is not None:
                emit_all(request, set_resolved(state, repo, root, state.bot, mutation == "resolveReviewThread"))
                thread = {"id": node_id, "isResolved": root.resolved}
                return JSONResponse({"data": {mutation: {"thread": thread}}})
            continue
        pull = next((p for p in repo.pulls.values() if f"PR_{p.id}" == node_id), None)
        if pull is not None:
            emit_all(request, set_draft(state, repo, pull, mutation == "convertPullRequestToDraft", state.bot))
            return JSONResponse({"data": {mutation: {"pullRequest": _pull_node(state, repo, pull)}}})
    return _not_found([mutation], f"Could not resolve to a node with the global id of '{node_id}'")


routes = [Route("/graphql", graphql, methods=["POST"])]
