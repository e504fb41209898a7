"""The GitHub double's diff routes: a PR's files, commits and diff text, and the compare API."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from . import bare_repo
from .github_diff import commit_info, commits_between, diff_files, merge_base, pull_range, unified_diff
from .github_http import ApiError, double_of, paginate, require_repo
from .github_json_reviews import commit_json, file_json
from .github_review_routes import find_pull
from .github_state import Pull, Repo

DIFF_TYPES = ("application/vnd.github.diff", "application/vnd.github.v3.diff")
PATCH_TYPES = ("application/vnd.github.patch", "application/vnd.github.v3.patch")


def diff_media(request: Request, repo: Repo, pull: Pull) -> PlainTextResponse | None:
    """``GET /pulls/{n}`` asked for ``diff`` or ``patch`` text instead of JSON (None: answer JSON)."""
    accept = request.headers.get("accept", "")
    base, head = pull_range(repo, pull)
    if any(t in accept for t in DIFF_TYPES):
        return PlainTextResponse(unified_diff(repo.path, base, head), media_type="text/x-diff")
    if any(t in accept for t in PATCH_TYPES):
        text = bare_repo.git(repo.path, "format-patch", "--stdout", "--no-signature", f"{base}..{head}")
        return PlainTextResponse(text, media_type="text/x-patch")
    return None


async def list_files(request: Request) -> JSONResponse:
    repo, _ = require_repo(request)
    state = double_of(request).state
    base, head = pull_range(repo, find_pull(repo, request))
    page, headers = paginate(request, list(diff_files(repo.path, base, head)))
    return JSONResponse([file_json(state, repo, head, fd) for fd in page], headers=headers)


async def list_commits(request: Request) -> JSONResponse:
    repo, _ = require_repo(request)
    state = double_of(request).state
    base, head = pull_range(repo, find_pull(repo, request))
    page, headers = paginate(request, commits_between(repo.path, base, head))
    return JSONResponse([commit_json(state, repo, c) for c in page], headers=headers)


async def compare(request: Request) -> JSONResponse:
    """``base...head`` like GitHub: files of the three-dot diff, commits oldest first, ahead/behind counts."""
    repo, _ = require_repo(request)
    state = double_of(request).state
    spec = request.path_params["basehead"]
    base_ref, sep, head_ref = spec.partition("...")
    if not sep:
        base_ref, sep, head_ref = spec.partition("..")
    base_sha, head_sha = (bare_repo.rev_parse(repo.path, r) if r else None for r in (base_ref, head_ref))
    if base_sha is None or head_sha is None:
        raise ApiError(404, "Not Found")
    mb = merge_base(repo.path, base_sha, head_sha)
    if mb is None:
        raise ApiError(404, f"No common ancestor between {base_ref} and {head_ref}.")
    commits = commits_between(repo.path, mb, head_sha)
    behind = len(commits_between(repo.path, mb, base_sha))
    status = ("identical" if not commits and not behind else "ahead" if not behind
              else "behind" if not commits else "diverged")
    page, headers = paginate(request, commits)
    api, html = f"{state.base_url}/repos/{repo.full_name}", f"{state.base_url}/{repo.full_name}"
    data = {"url": f"{api}/compare/{spec}", "html_url": f"{html}/compare/{spec}",
            "permalink_url": f"{html}/compare/{repo.owner.login}:{base_sha[:7]}...{repo.owner.login}:{head_sha[:7]}",
            "diff_url": f"{html}/compare/{spec}.diff", "patch_url": f"{html}/compare/{spec}.patch",
            "base_commit": commit_json(state, repo, commit_info(repo.path, base_sha)),
            "merge_base_commit": commit_json(state, repo, commit_info(repo.path, mb)),
            "status": status, "ahead_by": len(commits), "behind_by": behind, "total_commits": len(commits),
            "commits": [commit_json(state, repo, c) for c in page],
            "files": [file_json(state, repo, head_sha, fd) for fd in diff_files(repo.path, mb, head_sha)]}
    return JSONResponse(data, headers=headers)


R = "/repos/{owner}/{repo}"
routes = [
    Route(R + "/pulls/{number:int}/files", list_files),
    Route(R + "/pulls/{number:int}/commits", list_commits),
    Route(R + "/compare/{basehead:path}", compare),
]
