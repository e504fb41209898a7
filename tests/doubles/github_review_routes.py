"""The GitHub double's review routes: reviews, review comments, replies. Writes are the App's bot's."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .github_http import ApiError, double_of, emit, emit_all, paginate, read_json, require_repo, validation_failed
from .github_json import pull_json
from .github_json_reviews import review_comment_json, review_json
from .github_records import Review, ReviewComment
from .github_rest import _react
from .github_reviews import REST_EVENTS, add_comment, submit_pending, submit_review, unprocessable
from .github_state import Pull, Repo, now


def find_pull(repo: Repo, request: Request) -> Pull:
    pull = repo.pulls.get(request.path_params["number"])
    if pull is None:
        raise ApiError(404, "Not Found")
    return pull


def _review(repo: Repo, pull: Pull, request: Request) -> Review:
    review = repo.reviews.get(request.path_params["review_id"])
    if review is None or review.number != pull.number:
        raise ApiError(404, "Not Found")
    return review


def _comment(repo: Repo, request: Request) -> ReviewComment:
    comment = repo.review_comments.get(request.path_params["comment_id"])
    if comment is None or comment.deleted or comment.pending:
        raise ApiError(404, "Not Found")
    return comment


def _event(raw: object, *, pending_ok: bool) -> str:
    if raw not in REST_EVENTS or (raw == "PENDING" and not pending_ok):
        raise unprocessable("Variable $event of type PullRequestReviewEvent was provided invalid value")
    return REST_EVENTS[str(raw)]


async def list_reviews(request: Request) -> JSONResponse:
    """Submitted reviews, oldest first; pending ones only to their author (the bot is the only caller)."""
    repo, _ = require_repo(request)
    state = double_of(request).state
    pull = find_pull(repo, request)
    reviews = [r for r in repo.reviews.values()
               if r.number == pull.number and (r.state != "PENDING" or r.user is state.bot)]
    page, headers = paginate(request, sorted(reviews, key=lambda r: r.id))
    return JSONResponse([review_json(state, repo, r) for r in page], headers=headers)


async def create_review(request: Request) -> JSONResponse:
    repo, _ = require_repo(request)
    state = double_of(request).state
    pull = find_pull(repo, request)
    body = await read_json(request)
    comments = body.get("comments")
    if comments is not None and not isinstance(comments, list):
        raise validation_failed("PullRequestReview", "comments")
    review, events = submit_review(state, repo, pull, state.bot, _event(body.get("event") or "PENDING",
                                                                        pending_ok=True),
                                   body.get("body"), comments, body.get("commit_id"))
    emit_all(request, events)
    return JSONResponse(review_json(state, repo, review))


async def review_by_id(request: Request) -> JSONResponse:
    repo, _ = require_repo(request)
    state = double_of(request).state
    review = _review(repo, find_pull(repo, request), request)
    if request.method == "DELETE":
        if review.state != "PENDING":
            raise unprocessable("Can not delete a non-pending pull request review")
        del repo.reviews[review.id]
        for cid in review.comment_ids:
            repo.review_comments.pop(cid, None)
    return JSONResponse(review_json(state, repo, review))


async def submit_review_event(request: Request) -> JSONResponse:
    repo, _ = require_repo(request)
    state = double_of(request).state
    pull = find_pull(repo, request)
    review = _review(repo, pull, request)
    body = await read_json(request)
    emit_all(request, submit_pending(state, repo, pull, review, _event(body.get("event"), pending_ok=False),
                                     body.get("body")))
    return JSONResponse(review_json(state, repo, review))


async def review_comments_of_review(request: Request) -> JSONResponse:
    repo, _ = require_repo(request)
    state = double_of(request).state
    review = _review(repo, find_pull(repo, request), request)
    items = [review_comment_json(state, repo, repo.review_comments[cid]) for cid in review.comment_ids
             if cid in repo.review_comments and not repo.review_comments[cid].deleted]
    page, headers = paginate(request, items)
    return JSONResponse(page, headers=headers)


async def list_review_comments(request: Request) -> JSONResponse:
    repo, _ = require_repo(request)
    state = double_of(request).state
    pull = find_pull(repo, request)
    comments = sorted((c for c in repo.review_comments.values()
                       if c.number == pull.number and not c.deleted and not c.pending), key=lambda c: c.id)
    page, headers = paginate(request, comments)
    return JSONResponse([review_comment_json(state, repo, c) for c in page], headers=headers)


async def create_review_comment(request: Request) -> JSONResponse:
    """A lone comment (``path``/``line``...) or, with ``in_reply_to``, a reply."""
    repo, _ = require_repo(request)
    state = double_of(request).state
    pull = find_pull(repo, request)
    body = await read_json(request)
    reply_to = None
    if body.get("in_reply_to") is not None:
        reply_to = repo.review_comments.get(body["in_reply_to"])
        if reply_to is None or reply_to.deleted or reply_to.number != pull.number:
            raise ApiError(404, "Not Found")
    comment, events = add_comment(state, repo, pull, state.bot, body, reply_to)
    emit_all(request, events)
    return JSONResponse(review_comment_json(state, repo, comment), 201)


async def reply(request: Request) -> JSONResponse:
    repo, _ = require_repo(request)
    state = double_of(request).state
    pull = find_pull(repo, request)
    target = _comment(repo, request)
    if target.number != pull.number:
        raise ApiError(404, "Not Found")
    body = await read_json(request)
    comment, events = add_comment(state, repo, pull, state.bot, {"body": body.get("body")}, target)
    emit_all(request, events)
    return JSONResponse(review_comment_json(state, repo, comment), 201)


async def comment_by_id(request: Request) -> Response:
    repo, _ = require_repo(request)
    state = double_of(request).state
    comment = _comment(repo, request)
    pull = repo.pulls[comment.number]
    if request.method == "GET":
        return JSONResponse(review_comment_json(state, repo, comment))
    if request.method == "DELETE":
        comment.deleted = True
        emit(request, repo, "pull_request_review_comment", "deleted", state.bot,
             comment=review_comment_json(state, repo, comment), pull_request=pull_json(state, repo, pull))
        return Response(status_code=204)
    body = (await read_json(request)).get("body")
    if not isinstance(body, str) or not body:
        raise validation_failed("PullRequestReviewComment", "body", "missing_field")
    if body != comment.body:
        changes = {"body": {"from": comment.body}}
        comment.history.append(comment.body)
        comment.body, comment.updated_at = body, now()
        emit(request, repo, "pull_request_review_comment", "edited", state.bot, changes=changes,
             comment=review_comment_json(state, repo, comment), pull_request=pull_json(state, repo, pull))
    return JSONResponse(review_comment_json(state, repo, comment))


async def react_comment(request: Request) -> JSONResponse:
    repo, _ = require_repo(request)
    return await _react(request, _comment(repo, request).reactions)


P = "/repos/{owner}/{repo}/pulls"
routes = [
    Route(P + "/{number:int}/reviews", list_reviews),
    Route(P + "/{number:int}/reviews", create_review, methods=["POST"]),
    Route(P + "/{number:int}/reviews/{review_id:int}", review_by_id, methods=["GET", "DELETE"]),
    Route(P + "/{number:int}/reviews/{review_id:int}/events", submit_review_event, methods=["POST"]),
    Route(P + "/{number:int}/reviews/{review_id:int}/comments", review_comments_of_review),
    Route(P + "/{number:int}/comments", list_review_comments),
    Route(P + "/{number:int}/comments", create_review_comment, methods=["POST"]),
    Route(P + "/{number:int}/comments/{comment_id:int}/replies", reply, methods=["POST"]),
    Route(P + "/comments/{comment_id:int}", comment_by_id, methods=["GET", "PATCH", "DELETE"]),
    Route(P + "/comments/{comment_id:int}/reactions", react_comment, methods=["POST"]),
]
