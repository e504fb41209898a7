"""Signing in with GitHub through the App's own OAuth credentials (GitHub's web application flow).

The browser goes to ``<GitHub>/login/oauth/authorize`` with the App's client id and a ``state``; GitHub sends it
back with a code, which Mull trades (with the client secret) at ``/login/oauth/access_token`` for a user token.
That token answers two questions and is then dropped: who the user is (``GET /user``) and whether they can see
a repository (``GET /repos/{owner}/{repo}``: GitHub answers 404 to anyone who cannot).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

import httpx

from bot.app_credentials import github_web_url

TIMEOUT_S = 10


class LoginFailed(Exception):
    """GitHub did not sign the user in; the message says why, without any credential."""


@dataclass(frozen=True)
class GitHubOAuth:
    api_url: str  # MULL_GITHUB_URL
    client_id: str
    client_secret: str = field(repr=False)

    @property
    def web_url(self) -> str:
        return github_web_url(self.api_url)

    def authorize_url(self, redirect_uri: str, state: str) -> str:
        query = urlencode({"client_id": self.client_id, "redirect_uri": redirect_uri, "state": state})
        return f"{self.web_url}/login/oauth/authorize?{query}"

    async def user_token(self, http: httpx.AsyncClient, code: str, redirect_uri: str) -> str:
        try:
            answer = await http.post(f"{self.web_url}/login/oauth/access_token", headers={"Accept": "application/json"},
                                     data={"client_id": self.client_id, "client_secret": self.client_secret,
                                           "code": code, "redirect_uri": redirect_uri})
            data = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise LoginFailed(f"GitHub's token endpoint did not answer ({type(exc).__name__})") from None
        token = data.get("access_token") if isinstance(data, dict) else None
        if answer.status_code != 200 or not isinstance(token, str) or not token:
            error = data.get("error") if isinstance(data, dict) else None
            raise LoginFailed(f"GitHub refused the sign-in code (HTTP {answer.status_code}, "
                              f"{str(error or 'no token')[:80]}): check MULL_GITHUB_CLIENT_ID and "
                              "MULL_GITHUB_CLIENT_SECRET against the App's settings page")
        return token

    async def login(self, http: httpx.AsyncClient, token: str) -> str:
        try:
            answer = await http.get(f"{self.api_url}/user", headers=_auth(token))
            login = answer.json().get("login") if answer.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            login = None
        if not isinstance(login, str) or not login:
            raise LoginFailed("GitHub did not say who signed in (GET /user)")
        return login

    async def can_see(self, http: httpx.AsyncClient, token: str, repo: str, repo_id: int) -> bool:
        """Whether the token's user can see ``repo`` (owner/name), and it is still the repository ``repo_id``."""
        owner, _, name = repo.partition("/")
        try:
            answer = await http.get(f"{self.api_url}/repos/{quote(owner, safe='')}/{quote(name, safe='')}",
                                    headers=_auth(token), follow_redirects=True)
            return answer.status_code == 200 and answer.json().get("id") == repo_id
        except (httpx.HTTPError, ValueError, AttributeError):
            return False


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28"}
