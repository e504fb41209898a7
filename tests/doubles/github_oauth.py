"""The GitHub double's OAuth web flow for a GitHub App's user sign-in, with per-user tokens.

``GET /login/oauth/authorize`` shows a page where the browser says who it is (GitHub's sign-in and consent,
in one form); posting it sends the browser back to ``redirect_uri`` with a one-time code. ``POST
/login/oauth/access_token`` trades the code, with the client secret, for a ``ghu_`` token of that user, which
``GET /user`` and ``GET /repos/{owner}/{repo}`` accept (a private repository only for its owner and
collaborators: 404 to anyone else, like GitHub).
"""

from __future__ import annotations

import html
import json
import secrets
import threading
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from .github_http import ApiError, double_of
from .github_json import public_user_json, repo_json
from .github_state import Repo, State


@dataclass
class OAuthState:
    """The App's client credentials, codes not yet traded, and live user tokens (token -> login)."""

    client_id: str = "Iv1.double0client"
    client_secret: str = field(default_factory=lambda: "secret-" + secrets.token_hex(20))
    codes: dict[str, tuple[str, str]] = field(default_factory=dict)  # code -> (login, redirect_uri)
    tokens: dict[str, str] = field(default_factory=dict)
    traded: list[str] = field(default_factory=list)  # logins, in sign-in order
    lock: threading.Lock = field(default_factory=threading.Lock)

    def token_for(self, login: str) -> str:
        token = "ghu_" + secrets.token_hex(18)
        with self.lock:
            self.tokens[token] = login
        return token


def user_of(request: Request) -> str | None:
    """The login of a user token on this request, if it carries one."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() not in ("bearer", "token"):
        return None
    return double_of(request).oauth.tokens.get(value.strip())


def user_sees(state: State, login: str, repo: Repo) -> bool:
    role = repo.collaborators.get(login.lower(), "none")
    return not repo.private or repo.owner.login.lower() == login.lower() or role != "none"


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body()).decode()
    if request.headers.get("content-type", "").startswith("application/json"):
        return {k: str(v) for k, v in json.loads(body or "{}").items()}
    return {k: v[0] for k, v in parse_qs(body).items()}


async def authorize_page(request: Request) -> Response:
    oauth = double_of(request).oauth
    params = request.query_params
    if params.get("client_id") != oauth.client_id or not params.get("redirect_uri"):
        return HTMLResponse("<h1>The application is not known</h1>", 404)
    hidden = "".join(f"<input type=hidden name={name} value='{html.escape(params.get(name, ''), quote=True)}'>"
                     for name in ("client_id", "redirect_uri", "state"))
    return HTMLResponse("<!doctype html><title>Sign in to GitHub</title><form method=post "
                        f"action=/login/oauth/authorize>{hidden}<label>Username <input name=login></label>"
                        "<button type=submit>Authorize</button></form>")


async def authorize(request: Request) -> Response:
    oauth = double_of(request).oauth
    form = await _form(request)
    if form.get("client_id") != oauth.client_id or not form.get("login") or not form.get("redirect_uri"):
        return HTMLResponse("<h1>Bad sign-in</h1>", 400)
    code = secrets.token_hex(10)
    with oauth.lock:
        oauth.codes[code] = (form["login"], form["redirect_uri"])
    sep = "&" if "?" in form["redirect_uri"] else "?"
    return RedirectResponse(f"{form['redirect_uri']}{sep}{urlencode({'code': code, 'state': form.get('state', '')})}",
                            302)


async def access_token(request: Request) -> JSONResponse:
    """GitHub answers 200 with an ``error`` field for a bad code or bad client credentials."""
    oauth = double_of(request).oauth
    form = await _form(request)
    if form.get("client_id") != oauth.client_id or form.get("client_secret") != oauth.client_secret:
        return JSONResponse({"error": "incorrect_client_credentials"})
    with oauth.lock:
        found = oauth.codes.pop(form.get("code", ""), None)
    if found is None or (form.get("redirect_uri") and form["redirect_uri"] != found[1]):
        return JSONResponse({"error": "bad_verification_code"})
    oauth.traded.append(found[0])
    return JSONResponse({"access_token": oauth.token_for(found[0]), "token_type": "bearer", "scope": ""})


async def get_user(request: Request) -> JSONResponse:
    login = user_of(request)
    if login is None:
        raise ApiError(401, "Requires authentication")
    state = double_of(request).state
    return JSONResponse(public_user_json(state, state.user(login)))


def repo_for_user(request: Request, login: str) -> JSONResponse:
    state = double_of(request).state
    repo = state.find_repo(request.path_params["owner"], request.path_params["repo"])
    if repo is None or not user_sees(state, login, repo):
        raise ApiError(404, "Not Found")
    return JSONResponse(repo_json(state, repo))


routes = [
    Route("/login/oauth/authorize", authorize_page, methods=["GET"]),
    Route("/login/oauth/authorize", authorize, methods=["POST"]),
    Route("/login/oauth/access_token", access_token, methods=["POST"]),
    Route("/user", get_user),
]
