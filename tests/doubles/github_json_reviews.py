"""GitHub-shaped JSON for code review: PR files, commits, reviews and review comments.

Like github_json.py, every field githubkit's models require is present. Review states are upper-case in
REST and lower-case in webhook payloads, as on GitHub.
"""

from __future__ import annotations

from .github_diff import FileDiff, anchor
from .github_json import author_association, reactions_summary, user_json
from .github_records import Review, ReviewComment
from .github_state import Repo, State, User, iso


def file_json(state: State, repo: Repo, head: str, fd: FileDiff) -> dict:
    base = state.base_url
    data = {"sha": fd.sha, "filename": fd.filename, "status": fd.status, "additions": fd.additions,
            "deletions": fd.deletions, "changes": fd.changes,
            "blob_url": f"{base}/{repo.full_name}/blob/{head}/{fd.filename}",
            "raw_url": f"{base}/{repo.full_name}/raw/{head}/{fd.filename}",
            "contents_url": f"{base}/repos/{repo.full_name}/contents/{fd.filename}?ref={head}"}
    if fd.patch is not None and not fd.binary:
        data["patch"] = fd.patch
    if fd.previous_filename is not None:
        data["previous_filename"] = fd.previous_filename
    return data


def commit_json(state: State, repo: Repo, commit: dict) -> dict:
    """A REST commit (``commits`` of compare and of a PR) from github_diff.commits_between's dicts."""
    api, html = f"{state.base_url}/repos/{repo.full_name}", f"{state.base_url}/{repo.full_name}"
    sha = commit["sha"]
    author = {"name": commit["author_name"], "email": commit["author_email"], "date": commit["date"]}
    committer = {"name": commit["committer_name"], "email": commit["committer_email"],
                 "date": commit["committer_date"]}
    return {"sha": sha, "node_id": f"C_{sha[:20]}", "url": f"{api}/commits/{sha}", "html_url": f"{html}/commit/{sha}",
            "comments_url": f"{api}/commits/{sha}/comments",
            "commit": {"url": f"{api}/git/commits/{sha}", "author": author, "committer": committer,
                       "message": commit["message"], "comment_count": 0,
                       "tree": {"sha": commit["tree"], "url": f"{api}/git/trees/{commit['tree']}"}},
            "author": None, "committer": None,
            "parents": [{"sha": p, "url": f"{api}/commits/{p}", "html_url": f"{html}/commit/{p}"}
                        for p in commit["parents"]]}


def review_json(state: State, repo: Repo, review: Review, *, webhook: bool = False) -> dict:
    pull_url = f"{state.base_url}/repos/{repo.full_name}/pulls/{review.number}"
    html = f"{state.base_url}/{repo.full_name}/pull/{review.number}#pullrequestreview-{review.id}"
    data = {"id": review.id, "node_id": f"PRR_{review.id}", "user": user_json(state, review.user),
            "body": review.body, "state": review.state.lower() if webhook else review.state, "html_url": html,
            "pull_request_url": pull_url, "commit_id": review.commit_id,
            "author_association": author_association(repo, review.user),
            "_links": {"html": {"href": html}, "pull_request": {"href": pull_url}}}
    if review.submitted_at is not None or webhook:
        data["submitted_at"] = iso(review.submitted_at)
    return data


def review_comment_json(state: State, repo: Repo, comment: ReviewComment) -> dict:
    """A review comment as it reads now: ``line``/``position``/``commit_id`` follow the PR's head; None once
    a later push outdated it, while the ``original_*`` fields keep where it was made."""
    api = f"{state.base_url}/repos/{repo.full_name}"
    url = f"{api}/pulls/comments/{comment.id}"
    pull_url = f"{api}/pulls/{comment.number}"
    html = f"{state.base_url}/{repo.full_name}/pull/{comment.number}#discussion_r{comment.id}"
    where = anchor(repo, repo.pulls[comment.number], comment)
    data = {
        "url": url, "pull_request_review_id": comment.review_id, "id": comment.id,
        "node_id": f"PRRC_{comment.id}", "diff_hunk": comment.diff_hunk, "path": comment.path,
        "position": where.position, "original_position": comment.position, "commit_id": where.commit_id,
        "original_commit_id": comment.commit_id, "user": user_json(state, comment.user), "body": comment.body,
        "created_at": iso(comment.created_at), "updated_at": iso(comment.updated_at), "html_url": html,
        "pull_request_url": pull_url, "author_association": author_association(repo, comment.user),
        "_links": {"self": {"href": url}, "html": {"href": html}, "pull_request": {"href": pull_url}},
        "start_line": where.start_line, "original_start_line": comment.start_line,
        "start_side": comment.start_side if comment.start_line is not None else None,
        "line": where.line, "original_line": comment.line, "side": comment.side, "subject_type": "line",
        "reactions": reactions_summary(url, comment.reactions),
    }
    if comment.in_reply_to_id is not None:
        data["in_reply_to_id"] = comment.in_reply_to_id
    return data


def graphql_login(user: User) -> str:
    """GraphQL names an App's bot without REST's ``[bot]`` suffix (``mull-test``, not ``mull-test[bot]``)."""
    return user.login.removesuffix("[bot]") if user.type == "Bot" else user.login
