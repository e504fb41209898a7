"""/runs/<id> on the web app: signing in through the GitHub double's OAuth flow, the one 404 for every refusal,
and a page that shows a hostile agent's output as inert, redacted text."""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import redis
import redis.asyncio as aioredis
from doubles.fixtures import REPO
from doubles.github import GitHubDouble
from starlette.testclient import TestClient

from bot import keys, session_store
from bot.github_login import GitHubOAuth
from bot.receiver import create_app
from bot.redaction import Redactor
from bot.session_site import LOGIN_COOKIE, VIEWER_COOKIE, SessionSiteConfig
from bot.session_store import Session, Step

SECRET = "webhook-secret-for-cookies"
MODEL_KEY = "sk-live-model-key-abcdefghijklmnop0123"
HOSTILE = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>"


def store(redis_url: str, session: Session, redactor: Redactor | None = None) -> None:
    async def go() -> None:
        client = aioredis.Redis.from_url(redis_url)
        await session_store.save(client, session, redactor or Redactor([MODEL_KEY]), 30)
        await client.aclose()
    asyncio.run(go())


def a_session(repo_id: int, run_id: str = "implement-1-mull-issue-3-abcdef0123") -> Session:
    return Session(run_id=run_id, stage="implement", repo_id=repo_id, repo=REPO, subject="issue #3",
                   started=time.time() - 30, seconds=29.5, outcome="pushed 0123456789ab",
                   files=("M\tsrc/widgets.py",), input_tokens=120, output_tokens=30, steps=(
                       Step(kind="model", title="Model turn 1", text="I will look around.", input_tokens=100,
                            output_tokens=20, ms=1500),
                       Step(kind="command", title="run_command", detail="cat secrets.txt; echo " + HOSTILE,
                            text=f"exit code 0\nkey={MODEL_KEY}\n{HOSTILE}\n" + "line\n" * 50, exit_code=0),
                       Step(kind="tool", title="edit_file", detail='{"path": "src/widgets.py"}', text="edited"),
                   ))


@pytest.fixture
def site(github_double: GitHubDouble, redis_url: str) -> Iterator[TestClient]:
    github_double.state.repo(REPO).private = True
    github_double.set_permission(REPO, "maria", "read")
    oauth = GitHubOAuth(github_double.url, github_double.oauth.client_id, github_double.oauth.client_secret)
    config = SessionSiteConfig(cookie_secret=SECRET, oauth=oauth, redactor=Redactor([MODEL_KEY]))
    with TestClient(create_app(SECRET, redis_url, app_slug="mull-test", sessions=config)) as client:
        yield client


def sign_in(client: TestClient, double: GitHubDouble, login: str, path: str) -> httpx.Response:
    """The whole web flow: Mull → the double's authorize page (as ``login``) → Mull's callback."""
    start = client.get(f"/login/github?next={path}", follow_redirects=False)
    assert start.status_code == 302, start.text
    authorize = urlsplit(start.headers["location"])
    assert f"{authorize.scheme}://{authorize.netloc}" == double.url and authorize.path == "/login/oauth/authorize"
    query = {k: v[0] for k, v in parse_qs(authorize.query).items()}
    granted = httpx.post(double.url + "/login/oauth/authorize", data={**query, "login": login})
    assert granted.status_code == 302
    back = urlsplit(granted.headers["location"])
    return client.get(f"{back.path}?{back.query}", follow_redirects=False)


def test_a_viewer_who_can_see_the_repository_sees_the_run(site, github_double, redis_url) -> None:
    session = a_session(github_double.state.repo(REPO).id)
    store(redis_url, session)
    path = f"/runs/{session.run_id}"
    assert site.get(path).status_code == 404  # nobody signed in yet

    back = sign_in(site, github_double, "maria", path)
    assert back.status_code == 302 and back.headers["location"] == path
    page = site.get(path)
    assert page.status_code == 200
    assert "Model turn 1" in page.text and "exit code 0" in page.text and "src/widgets.py" in page.text
    assert "120 in, 30 out" in page.text and "<details>" in page.text  # the long output starts folded
    assert "script-src" not in page.headers["content-security-policy"]
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert github_double.oauth.traded == ["maria"]
    assert VIEWER_COOKIE in site.cookies and LOGIN_COOKIE not in site.cookies
    assert "ghu_" not in site.cookies[VIEWER_COOKIE]  # the user's token is never kept


def test_hostile_output_is_inert_and_secrets_never_reach_redis_or_the_page(site, github_double, redis_url) -> None:
    session = a_session(github_double.state.repo(REPO).id)
    store(redis_url, session)
    stored = redis.Redis.from_url(redis_url).get(keys.session(session.run_id))
    assert MODEL_KEY.encode() not in zlib.decompress(stored)
    path = f"/runs/{session.run_id}"
    sign_in(site, github_double, "maria", path)
    page = site.get(path).text
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in page
    assert MODEL_KEY not in page and "[redacted]" in page


def test_a_secret_configured_after_the_run_is_redacted_on_the_page(github_double, redis_url) -> None:
    late = "late-secret-value-0987654321"
    session = Session(run_id="critique-1-pr4-0000000000", stage="critique", repo_id=github_double.state.repo(REPO).id,
                      repo=REPO, subject="pull request #4", started=time.time(), seconds=1, outcome="verdict pass",
                      steps=(Step(kind="model", title="Model turn 1", text=f"the value is {late}"),))
    store(redis_url, session, Redactor())
    oauth = GitHubOAuth(github_double.url, github_double.oauth.client_id, github_double.oauth.client_secret)
    config = SessionSiteConfig(cookie_secret=SECRET, oauth=oauth, redactor=Redactor([late]))
    with TestClient(create_app(SECRET, redis_url, sessions=config)) as client:
        sign_in(client, github_double, "acme", f"/runs/{session.run_id}")
        page = client.get(f"/runs/{session.run_id}")
    assert page.status_code == 200 and late not in page.text


def test_no_access_unknown_run_and_no_sign_in_are_the_same_404(site, github_double, redis_url) -> None:
    session = a_session(github_double.state.repo(REPO).id)
    store(redis_url, session)
    path = f"/runs/{session.run_id}"
    signed_out = site.get(path)
    with TestClient(site.app) as stranger:
        back = sign_in(stranger, github_double, "mallory", path)  # no role on the private repository
        assert back.status_code == 302
        denied = stranger.get(path)
        sign_in(stranger, github_double, "mallory", "/runs/implement-1-nothing-here")
        unknown = stranger.get("/runs/implement-1-nothing-here")
    for answer in (signed_out, denied, unknown):
        assert answer.status_code == 404
        assert "There is no run here that you can see." in answer.text
        assert "Model turn" not in answer.text
    assert denied.text.replace(path, "") == unknown.text.replace("/runs/implement-1-nothing-here", "")


def test_sign_in_refuses_a_foreign_state_a_bad_target_and_a_forged_cookie(site, github_double, redis_url) -> None:
    session = a_session(github_double.state.repo(REPO).id)
    store(redis_url, session)
    path = f"/runs/{session.run_id}"
    # An open redirect or another page as the target: refused before GitHub is asked.
    for target in ("https://evil.example/runs/x", "//evil.example/runs/x", "/metrics", "/runs/../setup"):
        assert site.get(f"/login/github?next={target}", follow_redirects=False).status_code == 404
    # A callback link carried to another browser (no login cookie): refused, no token traded.
    start = site.get(f"/login/github?next={path}", follow_redirects=False)
    query = {k: v[0] for k, v in parse_qs(urlsplit(start.headers["location"]).query).items()}
    granted = httpx.post(github_double.url + "/login/oauth/authorize", data={**query, "login": "maria"})
    back = urlsplit(granted.headers["location"])
    with TestClient(site.app) as other:
        assert other.get(f"{back.path}?{back.query}", follow_redirects=False).status_code == 404
    # The right browser with a state that is not the one it was given: refused too.
    tampered = back.query.replace(f"state={query['state']}", "state=not-the-state")
    assert site.get(f"{back.path}?{tampered}", follow_redirects=False).status_code == 404
    assert github_double.oauth.traded == []
    # A viewer cookie made up by hand: not signed in.
    site.cookies.set(VIEWER_COOKIE, "eyJ2Ijp7ImxvZ2luIjoibWFyaWEiLCJyZXBvcyI6WzFdfX0.AAAA")
    assert site.get(path).status_code == 404


def test_without_github_credentials_every_run_page_is_404(github_double, redis_url) -> None:
    session = a_session(github_double.state.repo(REPO).id)
    store(redis_url, session)
    with TestClient(create_app(SECRET, redis_url)) as client:
        answer = client.get(f"/runs/{session.run_id}")
        assert answer.status_code == 404 and "Sign in" not in answer.text
        assert client.get(f"/login/github?next=/runs/{session.run_id}").status_code == 404


def test_a_hostile_run_address_is_a_plain_404(site) -> None:
    for path in ("/runs/%3Cscript%3Ealert(1)%3C%2Fscript%3E", "/runs/x'%20onmouseover='alert(1)", "/runs/" + "a" * 300):
        answer = site.get(path)
        assert answer.status_code == 404 and "<script" not in answer.text and "' onmouseover" not in answer.text
        assert answer.headers["content-security-policy"].startswith("default-src 'none'")


def test_cookies_are_http_only_and_secure_behind_an_https_public_address(github_double, redis_url) -> None:
    session = a_session(github_double.state.repo(REPO).id)
    store(redis_url, session)
    oauth = GitHubOAuth(github_double.url, github_double.oauth.client_id, github_double.oauth.client_secret)
    config = SessionSiteConfig(cookie_secret=SECRET, oauth=oauth, public_url="https://mull.example.org")
    with TestClient(create_app(SECRET, redis_url, sessions=config)) as client:
        start = client.get(f"/login/github?next=/runs/{session.run_id}", follow_redirects=False)
    cookie = start.headers["set-cookie"]
    assert cookie.startswith(f"{LOGIN_COOKIE}=") and "HttpOnly" in cookie and "Secure" in cookie
    assert "samesite=lax" in cookie.lower()
    query = parse_qs(urlsplit(start.headers["location"]).query)
    assert query["redirect_uri"] == ["https://mull.example.org/login/github/callback"]
