"""The GitHub double's pull request and contents routes, read live from the bare repositories."""

from __future__ import annotations

import base64

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import bare_repo
from .github_files import diff_media
from .github_http import (
    ApiError,
    double_of,
    emit,
    paginate,
    read_json,
    require_repo,
    validation_failed,
)
from .github_json import pull_json
from .github_rest import apply_title_body
from .github_state import Pull, Repo, now


def _pull(repo: Repo, request: Request) -> Pull:
    pull = repo.pulls.get(request.path_params["number"])
    if pull is None:
        raise ApiError(404, "Not Found")
    return pull


def _invalid(field: str) -> ApiError:
    return validation_failed("PullRequest", field)


def _custom(message: str) -> ApiError:
    error = {"resource": "PullRequest", "code": "custom", "message": message}
    return ApiError(422, "Validation Failed", [error])


def _head_ref(repo: Repo, head: str) -> str:
    """The branch of a ``owner:branch`` or ``branch`` head; other owners' forks are not modelled."""
    owner, sep, ref = head.rpartition(":")
    if sep and owner.lower() != repo.owner.login.lower():
        raise _invalid("head")
    return ref


async def list_pulls(request: Request) -> JSONResponse:
    repo, _ = require_repo(request)
    state = double_of(request).state
    want = request.query_params.get("state", "open")
    head = request.query_params.get("head")
    base = request.query_params.get("base")
    pulls = sorted(repo.pulls.values(), key=lambda p: -p.number)
    pulls = [p for p in pulls
             if want in ("all", repo.issues[p.number].state)
             and (not head or p.head_ref == _head_ref(repo, head))
             and (not base or p.base_ref == base)]
    page, headers = paginate(request, pulls)
    return JSONResponse([pull_json(state, repo, p) for p in page], headers=headers)


async def create_pull(request: Request) -> JSONResponse:
    repo, _ = require_repo(request)
    state = double_of(request).state
    body = await read_json(request)
    for field in ("title", "head", "base"):
        if not isinstance(body.get(field), str) or not body[field]:
            raise validation_failed("PullRequest", field, "missing_field")
    head_ref, base_ref = _head_ref(repo, body["head"]), body["base"]
    head_sha = bare_repo.rev_parse(repo.path, f"refs/heads/{head_ref}")
    base_sha = bare_repo.rev_parse(repo.path, f"refs/heads/{base_ref}")
    if head_sha is None:
        raise _invalid("head")
    if base_sha is None:
        raise _invalid("base")
    with state.lock:
        if any(p.head_ref == head_ref and repo.issues[p.number].state == "open" for p in repo.pulls.values()):
            raise _custom(f"A pull request already exists for {repo.owner.login}:{head_ref}.")
        if bare_repo.is_ancestor(repo.path, head_sha, base_sha):
            raise _custom(f"No commits between {base_ref} and {head_ref}")
        issue = state.new_issue(repo, body["title"], body.get("body"), state.bot, is_pull=True)
        draft = bool(body.get("draft"))
        pull = Pull(state.next_id(), issue.number, head_ref, base_ref, head_sha, draft=draft)
        repo.pulls[pull.number] = pull
    data = pull_json(state, repo, pull)
    emit(request, repo, "pull_request", "opened", state.bot, number=pull.number, pull_request=data)
    return JSONResponse(data, 201)


async def get_pull(request: Request) -> Response:
    """The PR's JSON, or its diff/patch text for ``Accept: application/vnd.github.diff`` (or ``.patch``)."""
    repo, _ = require_repo(request)
    pull = _pull(repo, request)
    return diff_media(request, repo, pull) or JSONResponse(pull_json(double_of(request).state, repo, pull))


async def patch_pull(request: Request) -> JSONResponse:
    repo, _ = require_repo(request)
    state = double_of(request).state
    pull = _pull(repo, request)
    issue = repo.issues[pull.number]
    body = await read_json(request)
    changes = apply_title_body(issue, body)
    if isinstance(body.get("base"), str) and body["base"] != pull.base_ref:
        if bare_repo.rev_parse(repo.path, f"refs/heads/{body['base']}") is None:
            raise _invalid("base")
        changes["base"] = {"ref": {"from": pull.base_ref}}
        pull.base_ref = body["base"]
    if changes:
        issue.updated_at = now()
        emit(request, repo, "pull_request", "edited", state.bot, number=pull.number, changes=changes,
             pull_request=pull_json(state, repo, pull))
    if body.get("state") in ("open", "closed") and body["state"] != issue.state:
        issue.state = body["state"]
        issue.closed_at = now() if issue.state == "closed" else None
        emit(request, repo, "pull_request", "closed" if issue.state == "closed" else "reopened", state.bot,
             number=pull.number, pull_request=pull_json(state, repo, pull))
    return JSONResponse(pull_json(state, repo, pull))


def _content_item(request: Request, repo: Repo, kind: str, sha: str, path: str, size: int, ref: str) -> dict:
    base = double_of(request).state.base_url
    url = f"{base}/repos/{repo.full_name}/contents/{path}?ref={ref}"
    git_url = f"{base}/repos/{repo.full_name}/git/{'trees' if kind == 'tree' else 'blobs'}/{sha}"
    html = f"{base}/{repo.full_name}/{'tree' if kind == 'tree' else 'blob'}/{ref}/{path}"
    return {"type": "dir" if kind == "tree" else "file", "size": size, "name": path.rsplit("/", 1)[-1],
            "path": path, "sha": sha, "url": url, "git_url": git_url, "html_url": html,
            "download_url": None if kind == "tree" else f"{base}/raw/{repo.full_name}/{ref}/{path}",
            "_links": {"self": url, "git": git_url, "html": html}}


async def get_contents(request: Request) -> JSONResponse:
    repo, _ = require_repo(request)
    path = request.path_params.get("path", "").strip("/")
    ref = request.query_params.get("ref") or repo.default_branch
    found = bare_repo.object_at(repo.path, ref, path)
    if found is None:
        raise ApiError(404, "Not Found")
    kind, sha = found
    if kind == "tree":
        entries = bare_repo.list_tree(repo.path, ref, path)
        return JSONResponse([_content_item(request, repo, k, s, p, n, ref) for k, s, p, n in entries])
    data = bare_repo.read_blob(repo.path, sha)
    encoded = base64.b64encode(data).decode()
    item = _content_item(request, repo, kind, sha, path, len(data), ref)
    item.update(content="\n".join(encoded[i:i + 60] for i in range(0, len(encoded), 60)) + "\n",
                encoding="base64")
    return JSONResponse(item)


R = "/repos/{owner}/{repo}"
routes = [
    Route(R + "/pulls", list_pulls),
    Route(R + "/pulls", create_pull, methods=["POST"]),
    Route(R + "/pulls/{number:int}", get_pull),
    Route(R + "/pulls/{number:int}", patch_pull, methods=["PATCH"]),
    Route(R + "/contents", get_contents),
    Route(R + "/contents/{path:path}", get_contents),
]
