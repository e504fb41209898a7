"""``/runs/<id>``: a run's session page, for people who may see its repository, and the GitHub sign-in it needs.

A viewer is whoever signed in with GitHub; the signed cookie ``mull_viewer`` holds their login and the ids of
the repositories GitHub said they can see, checked at sign-in, for ``VIEWER_HOURS``. A run of another repository
sends them through GitHub again, which checks that one. Anything else (nobody signed in, a repository they
cannot see, a run that does not exist or has expired) gets the same 404 page, so the page reveals nothing
about which runs exist. The sign-in's ``state`` is bound to the browser by the signed cookie ``mull_login``.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any

import httpx
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from bot import logs, session_page, session_store
from bot.github_login import TIMEOUT_S, GitHubOAuth, LoginFailed
from bot.redaction import Redactor
from bot.session_bucket import Bucket, BucketClient, BucketError
from bot.session_store import Session
from bot.signed_cookie import CookieSigner, derive_key
from bot.tls_context import client_context

VIEWER_COOKIE, LOGIN_COOKIE = "mull_viewer", "mull_login"
VIEWER_HOURS = 8  # how long a check of "can see this repository" holds before GitHub is asked again
LOGIN_MINUTES = 10
MAX_REPOS = 30  # repositories one viewer cookie remembers (the oldest go first)
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_RUN_PATH = re.compile(r"/runs/[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


@dataclass(frozen=True)
class SessionSiteConfig:
    """What the session pages need from the settings; ``oauth`` None: nobody can sign in, every page is 404."""

    cookie_secret: str = field(repr=False)  # the webhook secret: each cookie's key is derived from it
    oauth: GitHubOAuth | None = None
    public_url: str | None = None  # MULL_PUBLIC_URL: GitHub sends the browser back there
    redactor: Redactor = field(default_factory=Redactor)
    bucket: Bucket | None = None  # MULL_SESSION_BUCKET: sessions are read there instead of from Redis


class SessionSite:
    def __init__(self, config: SessionSiteConfig, redis: Any) -> None:
        self.config = config
        self.redis = redis
        self.viewer = CookieSigner(derive_key(config.cookie_secret, VIEWER_COOKIE))
        self.login_state = CookieSigner(derive_key(config.cookie_secret, LOGIN_COOKIE))
        self.log = logs.get("mull.sessions")

    def routes(self) -> list[Route]:
        return [Route("/runs/{run_id:path}", self.run_page), Route("/login/github", self.sign_in),
                Route("/login/github/callback", self.callback)]

    def _secure(self, request: Request) -> bool:
        return (self.config.public_url or str(request.base_url)).startswith("https://")

    def _redirect_uri(self, request: Request) -> str:
        return f"{(self.config.public_url or str(request.base_url)).rstrip('/')}/login/github/callback"

    def _missing(self, request: Request) -> Response:
        return HTMLResponse(session_page.not_found(request.url.path, self.config.oauth is not None), 404,
                            headers=session_page.HEADERS)

    async def _session(self, run_id: str) -> Session | None:
        if not _RUN_ID.fullmatch(run_id):
            return None
        try:
            if self.config.bucket is None:
                return await session_store.load(self.redis, run_id)
            async with httpx.AsyncClient(timeout=TIMEOUT_S, verify=client_context()) as http:
                return await session_store.load(self.redis, run_id, BucketClient(self.config.bucket, http))
        except (RedisError, OSError) as exc:
            self.log.warning("session page: redis unavailable", error=self.config.redactor.text(str(exc)))
            return None
        except BucketError as exc:
            self.log.warning("session page: bucket unavailable", error=self.config.redactor.text(str(exc)))
            return None

    async def run_page(self, request: Request) -> Response:
        viewer = self.viewer.load(request.cookies.get(VIEWER_COOKIE))
        if viewer is None or self.config.oauth is None:
            return self._missing(request)
        session = await self._session(request.path_params["run_id"])
        if session is None or session.repo_id not in viewer.get("repos", []):
            return self._missing(request)
        return HTMLResponse(session_page.render(session, self.config.redactor), headers=session_page.HEADERS)

    async def sign_in(self, request: Request) -> Response:
        """To GitHub, with a fresh state bound to this browser; ``next`` is the run page to come back to."""
        oauth = self.config.oauth
        target = request.query_params.get("next", "")
        if oauth is None or not _RUN_PATH.fullmatch(target):
            return self._missing(request)
        state = secrets.token_urlsafe(24)
        response = RedirectResponse(oauth.authorize_url(self._redirect_uri(request), state), 302)
        response.set_cookie(LOGIN_COOKIE, self.login_state.dump({"state": state, "next": target}, LOGIN_MINUTES * 60),
                            max_age=LOGIN_MINUTES * 60, httponly=True, samesite="lax", secure=self._secure(request))
        return response

    async def callback(self, request: Request) -> Response:
        oauth = self.config.oauth
        started = self.login_state.load(request.cookies.get(LOGIN_COOKIE))
        state, code = request.query_params.get("state", ""), request.query_params.get("code", "")
        if oauth is None or started is None or not state or not code or len(code) > 200 or \
                not secrets.compare_digest(str(started.get("state", "")).encode(), state.encode()):
            self.log.info("sign-in refused: no state of this browser's", has_cookie=started is not None)
            return self._missing(request)
        target = str(started.get("next", ""))
        session = await self._session(target.removeprefix("/runs/")) if _RUN_PATH.fullmatch(target) else None
        viewer = self.viewer.load(request.cookies.get(VIEWER_COOKIE)) or {}
        repos = [r for r in viewer.get("repos", []) if isinstance(r, int)]
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT_S) as http:
                token = await oauth.user_token(http, code, self._redirect_uri(request))
                login = await oauth.login(http, token)
                allowed = session is not None and await oauth.can_see(http, token, session.repo, session.repo_id)
        except LoginFailed as exc:
            self.log.warning("sign-in with GitHub failed", reason=self.config.redactor.text(str(exc)))
            return self._missing(request)
        if session is not None and allowed:
            repos = [r for r in repos if r != session.repo_id][-(MAX_REPOS - 1):] + [session.repo_id]
        self.log.info("signed in with GitHub", login=login, allowed=allowed)
        response = RedirectResponse(target if _RUN_PATH.fullmatch(target) else "/", 302)
        response.set_cookie(VIEWER_COOKIE, self.viewer.dump({"login": login, "repos": repos}, VIEWER_HOURS * 3600),
                            max_age=VIEWER_HOURS * 3600, httponly=True, samesite="lax", secure=self._secure(request))
        response.delete_cookie(LOGIN_COOKIE)
        return response
