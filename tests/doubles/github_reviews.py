"""Pull request reviews and review comments in the GitHub double: the logic tests and routes share.

Functions here change state and return the webhooks GitHub would send (``Events``); routes queue them, the
GitHubDouble's helpers deliver them at once. A review is all-or-nothing: one comment on a line outside
the diff rejects it with GitHub's 422. A lone comment or a reply is a review of its own too (state
COMMENTED, empty body), so it sends ``pull_request_review_comment.created`` and then
``pull_request_review.submitted``, as GitHub does.
"""

from __future__ import annotations

from . import bare_repo
from .github_diff import FileDiff, pull_files, pull_range
from .github_http import ApiError
from .github_json import hook_payload, pull_json
from .github_json_reviews import review_comment_json, review_json
from .github_records import Review, ReviewComment
from .github_state import Pull, Repo, State, User, now

Events = list[tuple[str, dict]]
REST_EVENTS = {"APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED", "COMMENT": "COMMENTED",
               "PENDING": "PENDING"}


def unprocessable(message: str) -> ApiError:
    """GitHub's review errors: ``{"message": "Unprocessable Entity", "errors": [message]}``."""
    return ApiError(422, "Unprocessable Entity", [message])


def _commit(repo: Repo, pull: Pull, commit_id: object) -> str:
    """The PR commit a review or comment is made on: its head, or an earlier commit of the PR."""
    base, head = pull_range(repo, pull)
    if not commit_id or commit_id == head:
        return head
    sha = bare_repo.rev_parse(repo.path, str(commit_id))
    if sha is None or not bare_repo.is_ancestor(repo.path, sha, head) or bare_repo.is_ancestor(repo.path, sha, base):
        raise unprocessable(f"No commit found for SHA: {commit_id}")
    return sha


def _comment_from_spec(state: State, repo: Repo, pull: Pull, files: tuple[FileDiff, ...], commit: str,
                       user: User, review_id: int, spec: object) -> ReviewComment:
    """One ``comments[]`` entry of a review (or a lone comment), checked against the diff at ``commit``."""
    if not isinstance(spec, dict):
        raise unprocessable("Comments must be objects")
    body, path = spec.get("body"), spec.get("path")
    if not isinstance(body, str) or not body:
        raise unprocessable("Body can't be blank")
    fd = next((f for f in files if f.filename == path), None)
    if fd is None:
        raise unprocessable("Path could not be resolved")
    side, line = str(spec.get("side") or "RIGHT").upper(), spec.get("line")
    if line is None and isinstance(spec.get("position"), int):  # legacy addressing by patch position
        found = fd.line_at(spec["position"])
        if found is None:
            raise unprocessable("Position could not be resolved")
        side, line = found
    lines = fd.side(side)
    if side not in ("LEFT", "RIGHT") or not isinstance(line, int) or line not in lines:
        raise unprocessable("Line could not be resolved")
    start_line, start_side = spec.get("start_line"), str(spec.get("start_side") or side).upper()
    if start_line is not None:
        start_lines = fd.side(start_side)
        if not isinstance(start_line, int) or start_line not in start_lines:
            raise unprocessable("Start line could not be resolved")
        if start_side == side and start_line >= line:
            raise unprocessable("Start line must precede the end line")
        if start_lines[start_line].hunk != lines[line].hunk:
            raise unprocessable("Start line must be part of the same hunk as the line")
    position = lines[line].position
    return ReviewComment(state.next_id(), repo.full_name, pull.number, review_id, user, body, str(path), line,
                         side, commit, fd.diff_hunk(position), position, lines[line].text, start_line,
                         start_side if start_line is not None else None)


def _review_events(state: State, repo: Repo, pull: Pull, review: Review, sender: User,
                   comments_first: bool) -> Events:
    pr = pull_json(state, repo, pull)
    review_event = ("pull_request_review", hook_payload(state, repo, "submitted", sender,
                                                        review=review_json(state, repo, review, webhook=True),
                                                        pull_request=pr))
    comment_events = [("pull_request_review_comment",
                       hook_payload(state, repo, "created", sender, pull_request=pr,
                                    comment=review_comment_json(state, repo, repo.review_comments[cid])))
                      for cid in review.comment_ids]
    return [*comment_events, review_event] if comments_first else [review_event, *comment_events]


def _publish(state: State, repo: Repo, pull: Pull, review: Review, review_state: str, body: str | None,
             comments_first: bool = False) -> Events:
    review.state, review.submitted_at = review_state, now()
    if body:
        review.body = body
    for cid in review.comment_ids:
        repo.review_comments[cid].pending = False
    if review.user.login in pull.requested_reviewers:  # a review answers a review request
        pull.requested_reviewers.remove(review.user.login)
    return _review_events(state, repo, pull, review, review.user, comments_first)


def submit_review(state: State, repo: Repo, pull: Pull, user: User, review_state: str, body: str | None,
                  comments: list | None, commit_id: str | None = None) -> tuple[Review, Events]:
    """Create a review (PENDING ones stay private and send nothing), validating every comment first."""
    with state.lock:
        commit = _commit(repo, pull, commit_id)
        author = repo.issues[pull.number].user
        if user is author and review_state == "APPROVED":
            raise unprocessable("Review Can not approve your own pull request")
        if user is author and review_state == "CHANGES_REQUESTED":
            raise unprocessable("Review Can not request changes on your own pull request")
        if review_state in ("CHANGES_REQUESTED", "COMMENTED") and not body and not comments:
            raise unprocessable(f"Body is required when event is {review_state}")
        if review_state == "PENDING" and any(r.user is user and r.state == "PENDING" and r.number == pull.number
                                             for r in repo.reviews.values()):
            raise unprocessable("User can only have one pending review per pull request")
        files = pull_files(repo, pull, commit)
        review = Review(state.next_id(), repo.full_name, pull.number, user, "", "PENDING", commit)
        built = [_comment_from_spec(state, repo, pull, files, commit, user, review.id, spec)
                 for spec in comments or []]
        repo.reviews[review.id] = review
        for comment in built:
            comment.pending = True
            repo.review_comments[comment.id] = comment
            review.comment_ids.append(comment.id)
        if review_state == "PENDING":
            review.body = body or ""
            return review, []
        return review, _publish(state, repo, pull, review, review_state, body)


def submit_pending(state: State, repo: Repo, pull: Pull, review: Review, review_state: str,
                   body: str | None) -> Events:
    with state.lock:
        if review.state != "PENDING":
            raise unprocessable("Can not submit a review that is not pending")
        return _publish(state, repo, pull, review, review_state, body)


def add_comment(state: State, repo: Repo, pull: Pull, user: User, spec: dict,
                reply_to: ReviewComment | None = None) -> tuple[ReviewComment, Events]:
    """A lone review comment, or a reply in ``reply_to``'s thread (replies to replies join the root)."""
    with state.lock:
        review = Review(state.next_id(), repo.full_name, pull.number, user, "", "COMMENTED", "")
        if reply_to is not None:
            root = repo.review_comments[reply_to.in_reply_to_id or reply_to.id]
            if not isinstance(spec.get("body"), str) or not spec["body"]:
                raise unprocessable("Body can't be blank")
            comment = ReviewComment(state.next_id(), repo.full_name, pull.number, review.id, user, spec["body"],
                                    root.path, root.line, root.side, root.commit_id, root.diff_hunk, root.position,
                                    root.anchor_text, root.start_line, root.start_side, in_reply_to_id=root.id)
        else:
            commit = _commit(repo, pull, spec.get("commit_id"))
            files = pull_files(repo, pull, commit)
            comment = _comment_from_spec(state, repo, pull, files, commit, user, review.id, spec)
        review.commit_id = comment.commit_id
        review.comment_ids.append(comment.id)
        repo.reviews[review.id] = review
        repo.review_comments[comment.id] = comment
        return comment, _publish(state, repo, pull, review, "COMMENTED", None, comments_first=True)


def thread_comments(repo: Repo, root: ReviewComment) -> list[ReviewComment]:
    return [c for c in repo.review_comments.values()
            if (c.id == root.id or c.in_reply_to_id == root.id) and not c.deleted and not c.pending]


def set_resolved(state: State, repo: Repo, root: ReviewComment, user: User, resolved: bool) -> Events:
    """Resolve or unresolve a thread: ``pull_request_review_thread.resolved``/``unresolved`` when it changes."""
    with state.lock:
        if root.resolved == resolved:
            return []
        root.resolved_by = user if resolved else None
        pull = repo.pulls[root.number]
        thread = {"node_id": f"PRRT_{root.id}",
                  "comments": [review_comment_json(state, repo, c) for c in thread_comments(repo, root)]}
        payload = hook_payload(state, repo, "resolved" if resolved else "unresolved", user, thread=thread,
                               pull_request=pull_json(state, repo, pull))
        return [("pull_request_review_thread", payload)]
