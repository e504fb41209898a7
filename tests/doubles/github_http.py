"""HTTP plumbing shared by the GitHub double's routes: auth, errors, request log, failure injection, paging.

Auth mirrors GitHub's: App routes want an RS256 JWT from the App key, everything else a live
installation token; git wants the token as a Basic password (or Bearer).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from typing import TYPE_CHECKING

import jwt
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from .github_json import hook_payload
from .github_state import Repo, RequestRecord, State, Token, User

if TYPE_CHECKING:
    from .github import GitHubDouble

DOCS = "https://docs.github.com/rest"
BAD_JWT = "A JSON web token could not be decoded"


class ApiError(Exception):
    """Raised by a handler to answer with GitHub's error JSON."""

    def __init__(self, status: int, message: str, errors: list | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.errors, self.headers = status, message, errors, headers or {}


def error_body(message: str, errors: list | None = None) -> dict:
    body: dict = {"message": message, "documentation_url": DOCS}
    if errors is not None:
        body["errors"] = errors
        body["status"] = "422"
    return body


async def api_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(error_body(exc.message, exc.errors), exc.status, headers=exc.headers)


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    message = "Not Found" if exc.status_code == 404 else str(exc.detail)
    return JSONResponse(error_body(message), exc.status_code)


def double_of(request: Request) -> GitHubDouble:
    return request.app.state.double


def parse_auth(header: str | None, state: State) -> tuple[str, str | None, Token | None]:
    """(kind, credential, live token) from an Authorization header. kind: none|jwt|token|basic|invalid."""
    if not header:
        return "none", None, None
    scheme, _, value = header.partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme == "basic":
        try:
            value = base64.b64decode(value).decode().partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            return "invalid", None, None
        token = state.live_token(value)
        return ("basic" if token else "invalid"), value, token
    if scheme not in ("bearer", "token"):
        return "invalid", value, None
    if token := state.live_token(value):
        return "token", value, token
    if scheme == "bearer" and value.count(".") == 2:
        return "jwt", value, None
    return "invalid", value, None


def jwt_problem(state: State, raw: str) -> str | None:
    """Why GitHub would refuse this App JWT, or None when it is acceptable."""
    try:
        claims = jwt.decode(raw, state.app.public_key_pem, algorithms=["RS256"], leeway=60,
                            options={"require": ["exp", "iat", "iss"]})
    except jwt.ExpiredSignatureError:
        return "'Expiration time' claim ('exp') must be a numeric value representing the future time " \
               "at which the assertion expires."
    except jwt.InvalidTokenError:
        return BAD_JWT
    if str(claims["iss"]) != str(state.app.app_id):
        return "'Issuer' claim ('iss') must be an Integer"
    if claims["exp"] - time.time() > 660:
        return "'Expiration time' claim ('exp') is too far in the future"
    return None


def require_jwt(request: Request) -> None:
    state = double_of(request).state
    kind, value, _ = parse_auth(request.headers.get("authorization"), state)
    if kind != "jwt" or value is None:
        raise ApiError(401, BAD_JWT)
    if problem := jwt_problem(state, value):
        raise ApiError(401, problem)


def require_token(request: Request) -> Token:
    """The live installation token of this request (``token X`` or ``Bearer X``)."""
    kind, _, token = parse_auth(request.headers.get("authorization"), double_of(request).state)
    if kind != "token" or token is None:
        raise ApiError(401, "Bad credentials")
    return token


def require_repo(request: Request) -> tuple[Repo, Token]:
    """The repo named in the path, if this request's token may see it (404 otherwise, like GitHub)."""
    token = require_token(request)
    state = double_of(request).state
    repo = state.find_repo(request.path_params["owner"], request.path_params["repo"])
    if repo is None or not state.token_covers(token, repo):
        raise ApiError(404, "Not Found")
    return repo, token


async def read_json(request: Request) -> dict:
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise ApiError(400, "Problems parsing JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "Problems parsing JSON")
    return data


def paginate(request: Request, items: list) -> tuple[list, dict[str, str]]:
    """One page of ``items`` per ``page``/``per_page`` with GitHub's Link header."""
    try:
        per_page = max(1, min(100, int(request.query_params.get("per_page", 30))))
        page = max(1, int(request.query_params.get("page", 1)))
    except ValueError:
        raise ApiError(400, "Invalid page parameter") from None
    last = max(1, -(-len(items) // per_page))
    links = []
    for rel, number in (("prev", page - 1), ("next", page + 1), ("last", last), ("first", 1)):
        if (rel == "prev" and page > 1) or (rel == "next" and page < last) or (rel in ("last", "first")
                                                                                and page != number):
            url = request.url.include_query_params(page=number, per_page=per_page)
            links.append(f'<{url}>; rel="{rel}"')
    headers = {"Link": ", ".join(links)} if links else {}
    return items[(page - 1) * per_page: page * per_page], headers


def validation_failed(resource: str, field: str, code: str = "invalid") -> ApiError:
    return ApiError(422, "Validation Failed", [{"resource": resource, "field": field, "code": code}])


def emit(request: Request, repo: Repo, event: str, action: str | None, sender: User,
         **objects: object) -> None:
    """Queue a webhook GitHub would send for this change."""
    double = double_of(request)
    double.hooks.emit(event, hook_payload(double.state, repo, action, sender, **objects))


def emit_all(request: Request, events: list[tuple[str, dict]]) -> None:
    """Queue webhooks built beforehand (``Events`` from the shared logic helpers and routes both use)."""
    for event, payload in events:
        double_of(request).hooks.emit(event, payload)


class GitHubMiddleware:
    """Logs every request with its auth, answers injected failures, adds GitHub's standard headers."""

    def __init__(self, app, double: GitHubDouble) -> None:
        self.app = app
        self.double = double

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        state = self.double.state
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        kind, value, token = parse_auth(headers.get("authorization"), state)
        rec = RequestRecord(scope["method"], scope["path"], scope["query_string"].decode(), auth=kind,
                            installation_id=token.installation_id if token else None,
                            token=value if kind in ("token", "basic") else None)
        state.record(rec)
        failure = state.take_failure(scope["method"], scope["path"])
        if failure is not None and failure.delay:
            await asyncio.sleep(failure.delay)
        if failure is not None and failure.status:
            rec.injected, rec.status = True, failure.status
            body = failure.body
            if body is None:
                body = error_body(f"Injected failure {failure.status}")
            return await JSONResponse(body, failure.status, headers=failure.headers)(scope, receive, send)

        async def send_wrapper(message) -> None:
            if message["type"] == "http.response.start":
                rec.status = message["status"]
                if not scope["path"].startswith("/git/"):
                    message.setdefault("headers", [])
                    message["headers"] = list(message["headers"]) + [
                        (b"x-github-request-id", uuid.uuid4().hex[:20].upper().encode()),
                        (b"x-ratelimit-limit", b"5000"), (b"x-ratelimit-remaining", b"4999"),
                        (b"x-ratelimit-used", b"1"), (b"x-ratelimit-resource", b"core"),
                        (b"x-ratelimit-reset", str(int(time.time()) + 3600).encode()),
                    ]
            await send(message)

        await self.app(scope, receive, send_wrapper)
