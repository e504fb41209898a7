"""The GitHub double's App-level routes (JWT auth, installation tokens, users) and the assembled app."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from . import (
    git_http,
    github_backlog,
    github_checks,
    github_files,
    github_graphql,
    github_hook_deliveries,
    github_manifest,
    github_oauth,
    github_pulls,
    github_rest,
    github_review_routes,
)
from .github_http import (
    ApiError,
    GitHubMiddleware,
    api_error_handler,
    double_of,
    http_error_handler,
    paginate,
    read_json,
    require_jwt,
    require_token,
)
from .github_json import app_json, installation_json, public_user_json, repo_json
from .github_state import iso

if TYPE_CHECKING:
    from .github import GitHubDouble


async def get_app(request: Request) -> JSONResponse:
    require_jwt(request)
    return JSONResponse(app_json(double_of(request).state))


async def list_installations(request: Request) -> JSONResponse:
    require_jwt(request)
    state = double_of(request).state
    items = [installation_json(state, i) for i in state.installations.values()]
    page, headers = paginate(request, items)
    return JSONResponse(page, headers=headers)


def _installation(request: Request):
    inst = double_of(request).state.installations.get(request.path_params["installation_id"])
    if inst is None:
        raise ApiError(404, "Not Found")
    return inst


async def get_installation(request: Request) -> JSONResponse:
    require_jwt(request)
    return JSONResponse(installation_json(double_of(request).state, _installation(request)))


async def create_access_token(request: Request) -> JSONResponse:
    """Mint a one-hour ``ghs_`` token, optionally narrowed to some repositories and permissions."""
    require_jwt(request)
    state = double_of(request).state
    inst = _installation(request)
    body = await read_json(request)
    covered = [r for r in state.repos.values() if inst.covers(r)]
    repos: set[str] | None = None
    if body.get("repositories") or body.get("repository_ids"):
        names = {n.lower() for n in body.get("repositories") or []}
        ids = set(body.get("repository_ids") or [])
        chosen = {r.full_name for r in covered if r.name.lower() in names or r.id in ids}
        if len(chosen) < len(names) + len(ids):
            raise ApiError(422, "There is at least one repository that does not exist or is not accessible "
                                "to the parent installation.")
        repos = chosen
    token = state.mint_token(inst, repos, body.get("permissions"))
    data: dict[str, object] = {
        "token": token.token, "expires_at": iso(token.expires_at), "permissions": token.permissions,
        "repository_selection": "all" if repos is None else "selected"}
    if repos is not None:
        data["repositories"] = [repo_json(state, state.repo(n)) for n in sorted(repos)]
    return JSONResponse(data, 201)


async def get_repo_installation(request: Request) -> JSONResponse:
    require_jwt(request)
    state = double_of(request).state
    repo = state.find_repo(request.path_params["owner"], request.path_params["repo"])
    inst = state.installation_for(repo) if repo else None
    if inst is None:
        raise ApiError(404, "Not Found")
    return JSONResponse(installation_json(state, inst))


async def installation_repositories(request: Request) -> JSONResponse:
    token = require_token(request)
    state = double_of(request).state
    repos = [repo_json(state, r) for r in state.repos.values() if state.token_covers(token, r)]
    page, headers = paginate(request, repos)
    inst = state.installations[token.installation_id]
    return JSONResponse({"total_count": len(repos), "repository_selection":
                         "all" if inst.repos is None else "selected", "repositories": page}, headers=headers)


async def get_user(request: Request) -> JSONResponse:
    require_token(request)
    state = double_of(request).state
    user = state.users.get(request.path_params["login"].lower())
    if user is None:
        raise ApiError(404, "Not Found")
    return JSONResponse(public_user_json(state, user))


class EnterprisePaths:
    """GitHub Enterprise Server serves its REST API under ``/api/v3``: answer there too, as at the root."""

    PREFIX = "/api/v3"

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path.startswith(self.PREFIX + "/"):
            scope = {**scope, "path": path[len(self.PREFIX):], "raw_path": path[len(self.PREFIX):].encode()}
        await self.app(scope, receive, send)


def build_app(double: GitHubDouble) -> Starlette:
    routes = [
        Route("/app", get_app),
        Route("/app/installations", list_installations),
        Route("/app/installations/{installation_id:int}", get_installation),
        Route("/app/installations/{installation_id:int}/access_tokens", create_access_token,
              methods=["POST"]),
        Route("/repos/{owner}/{repo}/installation", get_repo_installation),
        Route("/installation/repositories", installation_repositories),
        Route("/users/{login}", get_user),
        *github_rest.routes,
        *github_pulls.routes,
        *github_files.routes,
        *github_review_routes.routes,
        *github_backlog.routes,
        *github_checks.routes,
        *github_graphql.routes,
        *github_hook_deliveries.routes,
        *github_manifest.routes,
        *github_oauth.routes,
        *git_http.routes,
    ]
    app = Starlette(routes=routes, exception_handlers={ApiError: api_error_handler,
                                                       HTTPException: http_error_handler})
    app.state.double = double
    github_hook_deliveries.attach(app, double.hooks)
    app.add_middleware(GitHubMiddleware, double=double)
    app.add_middleware(EnterprisePaths)
    return app
