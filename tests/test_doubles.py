"""The doubles behave like the services they stand in for, so end-to-end failures point at Mull."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import functools
import hashlib
import hmac
import importlib
import json
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from githubkit import AppAuthStrategy, GitHub
from githubkit.cache import MemCacheStrategy
from githubkit.compat import type_validate_python
from githubkit.exception import PrimaryRateLimitExceeded, RequestFailed
from githubkit_schemas.latest import models as gk
from openai import AsyncOpenAI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

try:  # pytest's default import mode puts tests/ (it has no __init__.py) on sys.path
    from doubles import fixtures, github, github_http, server
except ModuleNotFoundError:  # tests/ became a package; imported by name so mypy sees one module path
    fixtures, github, github_http, server = (  # type: ignore[assignment]
        importlib.import_module(f"tests.doubles.{name}") for name in ("fixtures", "github", "github_http", "server"))

app_keypair, github_double = fixtures.app_keypair, fixtures.github_double  # fixtures, for pytest to find
scripted_model = fixtures.scripted_model
APP_ID, INSTALLATION_ID, REPO = fixtures.APP_ID, fixtures.INSTALLATION_ID, fixtures.REPO
BackgroundServer = server.BackgroundServer
basic_auth_header, generate_app_keypair = github.basic_auth_header, github.generate_app_keypair
ROOT = Path(__file__).resolve().parent.parent
TOKENS_PATH = f"/app/installations/{INSTALLATION_ID}/access_tokens"
READY = ("mutation($id: ID!) { markPullRequestReadyForReview(input: {pullRequestId: $id}) "
         "{ pullRequest { isDraft } } }")


@functools.lru_cache
def _signing_key(private_pem: str):
    """Loading a PEM validates the RSA key (~40 ms); load each once."""
    return serialization.load_pem_private_key(private_pem.encode(), None)


def app_jwt(private_pem: str, iss: object = APP_ID, exp_in: int = 540) -> str:
    """An App JWT; built at the JWS level so ``iss`` may be an int (pyjwt's encode insists on str)."""
    now = int(time.time())
    claims = {"iat": now - 60, "exp": now + exp_in, "iss": iss}
    return jwt.api_jws.encode(json.dumps(claims).encode(), _signing_key(private_pem), algorithm="RS256")


def call(method: str, url: str, **kwargs) -> httpx.Response:
    """One request; verify=False because a default client loads CA certificates (~0.1 s) for plain http."""
    with httpx.Client(verify=False, trust_env=False) as one:
        return one.request(method, url, **kwargs)


def mint(double: github.GitHubDouble, private_pem: str, body: dict | None = None) -> str:
    response = call("POST", double.url + TOKENS_PATH, json=body or {},
                    headers={"Authorization": f"Bearer {app_jwt(private_pem)}"})
    assert response.status_code == 201, response.text
    return response.json()["token"]


def client(double: github.GitHubDouble, token: str) -> httpx.Client:
    return httpx.Client(base_url=double.url, headers={"Authorization": f"token {token}"}, verify=False,
                        trust_env=False)


@pytest.fixture
def receiver():
    """A webhook receiver that records (headers, body) and answers 200 (or ``receiver.status``)."""
    class Receiver:
        def __init__(self) -> None:
            self.status = 200
            self.received: list[tuple[dict[str, str], bytes]] = []
            self.url = ""

    recv = Receiver()

    async def hook(request: Request) -> JSONResponse:
        recv.received.append((dict(request.headers), await request.body()))
        return JSONResponse({"ok": True}, recv.status)

    server = BackgroundServer(Starlette(routes=[Route("/webhook", hook, methods=["POST"])]))
    server.start()
    recv.url = f"{server.url}/webhook"
    yield recv
    server.stop()


def git_run(*args: str, cwd: Path | None = None, home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") and k != "SSH_ASKPASS"}
    env.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0", GIT_AUTHOR_NAME="T",
               GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="T", GIT_COMMITTER_EMAIL="t@example.com")
    return subprocess.run(["git", "-c", "credential.helper=", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=30)


# -- GitHub double: auth ----------------------------------------------------------------------------


def test_app_routes_want_a_valid_app_jwt(github_double, app_keypair):
    private, _ = app_keypair
    url = f"{github_double.url}/app"
    for iss in (APP_ID, str(APP_ID)):
        response = call("GET", url, headers={"Authorization": f"Bearer {app_jwt(private, iss)}"})
        assert response.status_code == 200
        assert response.json()["slug"] == "mull-test" and response.json()["id"] == APP_ID
    other_key = generate_app_keypair()[0]
    refused = {
        "none": {},
        "wrong key": {"Authorization": f"Bearer {app_jwt(other_key)}"},
        "wrong app": {"Authorization": f"Bearer {app_jwt(private, 999)}"},
        "expired": {"Authorization": f"Bearer {app_jwt(private, exp_in=-120)}"},
        "too long": {"Authorization": f"Bearer {app_jwt(private, exp_in=3600)}"},
        "installation token": {"Authorization": f"Bearer {github_double.mint_token(INSTALLATION_ID)}"},
    }
    for case, headers in refused.items():
        response = call("GET", url, headers=headers)
        assert response.status_code == 401, case
        assert response.json()["message"], case


def test_access_token_authorises_rest_and_is_counted(github_double, app_keypair):
    private, _ = app_keypair
    response = call("POST", github_double.url + TOKENS_PATH,
                    headers={"Authorization": f"Bearer {app_jwt(private)}"})
    assert response.status_code == 201
    data = response.json()
    assert data["token"].startswith("ghs_") and len(data["token"]) >= 40
    expires = datetime.strptime(data["expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert 3500 < (expires - datetime.now(UTC)).total_seconds() <= 3600
    token = data["token"]
    repo_url = f"{github_double.url}/repos/{REPO}"
    for scheme in ("token", "Bearer"):
        ok = call("GET", repo_url, headers={"Authorization": f"{scheme} {token}"})
        assert ok.status_code == 200 and ok.json()["clone_url"] == f"{github_double.url}/git/{REPO}.git"
    for headers in ({}, {"Authorization": "token ghs_not_a_real_token_at_all_000000000"},
                    {"Authorization": f"Bearer {app_jwt(private)}"}):
        refused = call("GET", repo_url, headers=headers)
        assert refused.status_code == 401 and refused.json()["message"] == "Bad credentials"
    assert len(github_double.tokens_minted) == 1
    used = github_double.requests("GET", r"^/repos/acme/widgets$")
    assert [r.installation_id for r in used if r.status == 200] == [INSTALLATION_ID, INSTALLATION_ID]
    github_double.revoke_tokens()
    assert call("GET", repo_url, headers={"Authorization": f"token {token}"}).status_code == 401


def test_narrowed_token_sees_only_its_repositories(github_double, app_keypair):
    github_double.create_repo("acme/other")
    narrowed = {"repositories": ["other"], "permissions": {"issues": "write"}}
    token = mint(github_double, app_keypair[0], narrowed)
    with client(github_double, token) as http:
        assert http.get("/repos/acme/other").status_code == 200
        assert http.get(f"/repos/{REPO}").status_code == 404
    bad = call("POST", github_double.url + TOKENS_PATH, json={"repositories": ["nope"]},
               headers={"Authorization": f"Bearer {app_jwt(app_keypair[0])}"})
    assert bad.status_code == 422


# -- GitHub double: git smart HTTP ------------------------------------------------------------------


def test_git_clone_and_push_need_an_installation_token(github_double, app_keypair, tmp_path, receiver):
    github_double.set_webhook(receiver.url)
    token = mint(github_double, app_keypair[0])
    auth = f"http.extraHeader=Authorization: {basic_auth_header(token)}"
    url = github_double.clone_url(REPO)

    denied = git_run("clone", url, str(tmp_path / "denied"), home=tmp_path)
    assert denied.returncode != 0
    assert [r.status for r in github_double.requests(path="/git/")] == [401]

    work = tmp_path / "work"
    cloned = git_run("-c", auth, "clone", url, str(work), home=tmp_path)
    assert cloned.returncode == 0, cloned.stderr
    assert (work / "src" / "widgets.py").read_text().startswith("def answer")

    (work / "NEW.md").write_text("new\n")
    git_run("checkout", "-q", "-b", "mull/issue-1", cwd=work, home=tmp_path)
    git_run("add", ".", cwd=work, home=tmp_path)
    git_run("commit", "-q", "-m", "Add NEW", cwd=work, home=tmp_path)
    assert git_run("push", "origin", "mull/issue-1", cwd=work, home=tmp_path).returncode != 0
    pushed = git_run("-c", auth, "push", "origin", "mull/issue-1", cwd=work, home=tmp_path)
    assert pushed.returncode == 0, pushed.stderr

    assert github_double.branches(REPO) == ["main", "mull/issue-1"]
    assert github_double.branch_files(REPO, "mull/issue-1")["NEW.md"] == "new\n"
    assert github_double.branch_commits(REPO, "mull/issue-1")[0]["message"] == "Add NEW"
    (push,) = github_double.wait_for_delivery("push")
    assert push.status == 200
    assert push.payload["ref"] == "refs/heads/mull/issue-1" and push.payload["created"] is True
    assert push.payload["after"] == github_double.branch_sha(REPO, "mull/issue-1")
    assert push.payload["sender"]["login"] == "mull-test[bot]"
    assert push.payload["installation"]["id"] == INSTALLATION_ID
    GitHub.webhooks.parse("push", push.body)


# -- GitHub double: REST behaviour ------------------------------------------------------------------


def test_pull_requests_share_numbers_and_refuse_duplicates(github_double, app_keypair):
    gh = github_double
    issue = gh.create_issue(REPO, "Widgets are off by one", "answer() says 41", "alice")
    gh.commit_files(REPO, "mull/issue-1", {"src/widgets.py": "def answer():\n    return 42\n"}, "Fix")
    with client(gh, mint(gh, app_keypair[0])) as http:
        body = {"title": "Fix answer", "head": "acme:mull/issue-1", "base": "main", "body": "Fixes #1",
                "draft": True}
        created = http.post(f"/repos/{REPO}/pulls", json=body)
        assert created.status_code == 201
        pr = created.json()
        assert pr["number"] == issue.number + 1 and pr["draft"] is True and pr["user"]["type"] == "Bot"
        assert pr["head"]["sha"] == gh.branch_sha(REPO, "mull/issue-1")
        assert pr["base"]["ref"] == "main" and pr["head"]["ref"] == "mull/issue-1"

        duplicate = http.post(f"/repos/{REPO}/pulls", json={**body, "head": "mull/issue-1"})
        assert duplicate.status_code == 422
        assert duplicate.json()["errors"][0]["message"] == \
            "A pull request already exists for acme:mull/issue-1."
        assert http.post(f"/repos/{REPO}/pulls", json={**body, "head": "acme:missing"}).status_code == 422
        gh.git(REPO, "update-ref", "refs/heads/same-as-main", gh.branch_sha(REPO, "main"))
        assert "No commits" in http.post(f"/repos/{REPO}/pulls", json={**body, "head": "same-as-main"}).text

        listed = http.get(f"/repos/{REPO}/pulls", params={"head": "acme:mull/issue-1"}).json()
        assert [p["number"] for p in listed] == [pr["number"]]
        assert http.get(f"/repos/{REPO}/pulls", params={"head": "acme:other"}).json() == []

        ready = http.post("/graphql", json={"query": READY, "variables": {"id": pr["node_id"]}})
        assert ready.json()["data"]["markPullRequestReadyForReview"]["pullRequest"]["isDraft"] is False
        assert gh.pulls(REPO)[0].draft is False
        assert "errors" in http.post("/graphql", json={"query": "{ viewer { login } }"}).json()

        closed = http.patch(f"/repos/{REPO}/pulls/{pr['number']}", json={"state": "closed"})
        assert closed.json()["state"] == "closed"
        assert http.get(f"/repos/{REPO}/pulls").json() == []
        assert len(http.get(f"/repos/{REPO}/pulls", params={"state": "all"}).json()) == 1
        assert http.post(f"/repos/{REPO}/pulls", json=body).status_code == 201  # closed ones don't block


@pytest.mark.parametrize("role, permission", [("admin", "admin"), ("maintain", "write"), ("write", "write"),
                                              ("triage", "read"), ("read", "read"), ("none", "none")])
def test_collaborator_permission_maps_like_github(github_double, app_keypair, role, permission):
    github_double.set_permission(REPO, "bob", role)
    with client(github_double, mint(github_double, app_keypair[0])) as http:
        data = http.get(f"/repos/{REPO}/collaborators/bob/permission").json()
        assert (data["permission"], data["role_name"], data["user"]["login"]) == (permission, role, "bob")
        assert http.get(f"/repos/{REPO}/collaborators/stranger/permission").status_code == 404


def test_comments_reactions_labels_and_pagination(github_double, app_keypair):
    github_double.create_issue(REPO, "Bug", "", "alice")
    with client(github_double, mint(github_double, app_keypair[0])) as http:
        posted = [http.post(f"/repos/{REPO}/issues/1/comments", json={"body": f"c{i}"}) for i in range(5)]
        ids = [p.json()["id"] for p in posted]
        page = http.get(f"/repos/{REPO}/issues/1/comments", params={"per_page": 2, "page": 2})
        assert [c["body"] for c in page.json()] == ["c2", "c3"]
        assert 'rel="next"' in page.headers["link"] and 'rel="prev"' in page.headers["link"]
        assert "page=3" in page.headers["link"]

        edited = http.patch(f"/repos/{REPO}/issues/comments/{ids[0]}", json={"body": "edited"})
        assert edited.status_code == 200
        assert github_double.comments(REPO, 1)[0].edits == 1
        assert http.delete(f"/repos/{REPO}/issues/comments/{ids[4]}").status_code == 204
        assert http.get(f"/repos/{REPO}/issues/comments/{ids[4]}").status_code == 404

        assert http.post(f"/repos/{REPO}/issues/1/reactions", json={"content": "eyes"}).status_code == 201
        assert http.post(f"/repos/{REPO}/issues/1/reactions", json={"content": "eyes"}).status_code == 200
        assert http.post(f"/repos/{REPO}/issues/comments/{ids[1]}/reactions",
                         json={"content": "rocket"}).status_code == 201
        assert [r.content for r in github_double.issue(REPO, 1).reactions] == ["eyes"]

        assert http.get(f"/repos/{REPO}/labels/mull").status_code == 404
        label = http.post(f"/repos/{REPO}/labels", json={"name": "mull", "color": "#00ff00"})
        assert label.status_code == 201 and label.json()["color"] == "00ff00"
        added = http.post(f"/repos/{REPO}/issues/1/labels", json={"labels": ["mull", "mull:working"]})
        assert [label["name"] for label in added.json()] == ["mull", "mull:working"]
        assert http.delete(f"/repos/{REPO}/issues/1/labels/mull:working").status_code == 200
        assert http.delete(f"/repos/{REPO}/issues/1/labels/mull:working").status_code == 404
        assert github_double.issue(REPO, 1).labels == ["mull"]
        assert http.get("/no/such/route").json()["message"] == "Not Found"
    github_double.hooks.wait_idle()
    assert [d.action for d in github_double.hooks.find("issues")] == ["labeled", "labeled", "unlabeled"]


def test_contents_read_the_bare_repo(github_double, app_keypair):
    with client(github_double, mint(github_double, app_keypair[0])) as http:
        file = http.get(f"/repos/{REPO}/contents/src/widgets.py").json()
        assert base64.b64decode(file["content"]).decode().startswith("def answer")
        assert [e["name"] for e in http.get(f"/repos/{REPO}/contents/src").json()] == ["widgets.py"]
        assert http.get(f"/repos/{REPO}/contents/missing.txt").status_code == 404
        assert http.get(f"/repos/{REPO}/contents/README.md", params={"ref": "nope"}).status_code == 404


def test_failure_injection(github_double, app_keypair):
    with client(github_double, mint(github_double, app_keypair[0])) as http:
        github_double.fail_next("GET", r"/repos/acme/widgets$", 502, times=2)
        github_double.rate_limit_next("POST", r"/comments$")
        assert [http.get(f"/repos/{REPO}").status_code for _ in range(3)] == [502, 502, 200]
        github_double.create_issue(REPO, "Bug")
        limited = http.post(f"/repos/{REPO}/issues/1/comments", json={"body": "x"})
        assert limited.status_code == 403 and limited.headers["x-ratelimit-remaining"] == "0"
        assert int(limited.headers["x-ratelimit-reset"]) > time.time()
        assert http.post(f"/repos/{REPO}/issues/1/comments", json={"body": "x"}).status_code == 201
    assert [r.injected for r in github_double.requests(path="/comments$")] == [True, False]


# -- GitHub double: webhooks ------------------------------------------------------------------------


def test_bot_comment_sends_a_signed_webhook(github_double, app_keypair, receiver):
    github_double.set_webhook(receiver.url, "s3cret")
    github_double.create_issue(REPO, "Bug", "", "alice")
    with client(github_double, mint(github_double, app_keypair[0])) as http:
        assert http.post(f"/repos/{REPO}/issues/1/comments", json={"body": "On it"}).status_code == 201
    (delivery,) = github_double.wait_for_delivery("issue_comment", "created")
    headers, body = receiver.received[0]
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["x-hub-signature-256"] == expected
    assert headers["x-github-event"] == "issue_comment" and headers["x-github-delivery"] == delivery.id
    assert headers["user-agent"].startswith("GitHub-Hookshot/")
    assert headers["content-type"] == "application/json"
    payload = json.loads(body)
    assert payload["action"] == "created" and payload["comment"]["body"] == "On it"
    assert payload["sender"] == {**payload["sender"], "login": "mull-test[bot]", "type": "Bot"}
    assert payload["installation"]["id"] == INSTALLATION_ID and payload["repository"]["full_name"] == REPO
    GitHub.webhooks.parse("issue_comment", body)

    assert github_double.label_issue(REPO, 1, "mull", "alice", delivery_id="fixed-id") == 200
    receiver.status = 202
    again = json.loads(receiver.received[-1][1])
    assert github_double.deliver("issues", again, delivery_id="fixed-id") == 202
    labeled = [json.loads(b) for h, b in receiver.received if h["x-github-delivery"] == "fixed-id"]
    assert len(labeled) == 2 and labeled[0] == labeled[1]
    assert labeled[0]["label"]["name"] == "mull" and labeled[0]["sender"]["login"] == "alice"
    assert github_double.issue(REPO, 1).labels == ["mull"]

    assert github_double.comment_as(REPO, 1, "@mull-test retry", "alice") == 202
    assert [c.user.login for c in github_double.comments(REPO, 1)] == ["mull-test[bot]", "alice"]
    assert [d.status for d in github_double.deliveries] == [200, 200, 202, 202]


def test_unreachable_webhook_target_is_recorded(github_double, app_keypair):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    github_double.set_webhook(f"http://127.0.0.1:{port}/webhook")
    github_double.create_issue(REPO, "Bug")
    with client(github_double, mint(github_double, app_keypair[0])) as http:
        assert http.post(f"/repos/{REPO}/issues/1/comments", json={"body": "x"}).status_code == 201
    (delivery,) = github_double.wait_for_delivery("issue_comment")
    assert delivery.status is None and "Connect" in delivery.error


# -- GitHub double: githubkit, exactly as Mull uses it ----------------------------------------------


def test_githubkit_installation_client(github_double, app_keypair):
    github_double.create_issue(REPO, "Bug", "", "alice")
    github_double.set_permission(REPO, "alice", "maintain")
    github_double.commit_files(REPO, "mull/issue-1", {"x.txt": "x"}, "x")

    async def scenario():
        # githubkit's default token cache is process-global and keyed by app id + installation id only:
        # a fresh cache keeps tokens from an earlier double (same ids, other server) out of this test.
        gh = GitHub(AppAuthStrategy(APP_ID, app_keypair[0]), base_url=github_double.url, auto_retry=False,
                    http_cache=False, cache_strategy=MemCacheStrategy())
        async with gh:  # without a context githubkit builds (and loads CA certs for) a client per request
            installation = (await gh.rest.apps.async_get_repo_installation("acme", "widgets")).parsed_data
        igh = gh.with_auth(gh.auth.as_installation(installation.id))
        async with igh:
            rest, repo = igh.rest, ("acme", "widgets")
            comment = (await rest.issues.async_create_comment(*repo, 1, body="hello")).parsed_data
            assert comment.user.login == "mull-test[bot]" and comment.body == "hello"
            perm = (await rest.repos.async_get_collaborator_permission_level(*repo, "alice")).parsed_data
            assert (perm.permission, perm.role_name) == ("write", "maintain")
            pr = (await rest.pulls.async_create(*repo, title="t", head="acme:mull/issue-1", base="main",
                                                draft=True)).parsed_data
            listed = (await rest.pulls.async_list(*repo, head="acme:mull/issue-1")).parsed_data
            assert [p.number for p in listed] == [pr.number]
            responses = [  # .parsed_data validates against githubkit's models
                await rest.repos.async_get(*repo),
                await rest.issues.async_get(*repo, 1),
                await rest.issues.async_list_comments(*repo, 1),
                await rest.reactions.async_create_for_issue(*repo, 1, content="eyes"),
                await rest.issues.async_add_labels(*repo, 1, labels=["mull"]),
                await rest.repos.async_get_content(*repo, "README.md"),
                await rest.users.async_get_by_username("alice"),
            ]
            assert all(r.parsed_data is not None for r in responses)
            await igh.async_graphql(READY, {"id": pr.node_id})
            github_double.fail_next("GET", r"/issues/1$", 502)
            with pytest.raises(RequestFailed):
                await rest.issues.async_get(*repo, 1)
            github_double.rate_limit_next("GET", r"/issues/1$")
            with pytest.raises(PrimaryRateLimitExceeded):
                await rest.issues.async_get(*repo, 1)

    asyncio.run(scenario())
    assert len(github_double.tokens_minted) == 1
    assert github_double.pulls(REPO)[0].draft is False
    github_double.hooks.wait_idle()
    events = {d.event for d in github_double.deliveries}
    assert events == {"issue_comment", "issues", "pull_request"}
    for delivery in github_double.deliveries:
        # githubkit's pull_request webhook models take ~2 s to build; they parse fine (checked by hand), and
        # the payload's pull_request object is the REST one that parsed above.
        if delivery.event != "pull_request":
            GitHub.webhooks.parse(delivery.event, delivery.body)


# -- GitHub double: code review, CI and the backlog ------------------------------------------------

LONG = "".join(f"x{i} = {i}\n" for i in range(1, 31))
# Line 2 changed, lines 29-30 deleted: hunks cover RIGHT lines 1-5 and 26-28, LEFT lines 1-5 and 26-30.
FEAT = LONG.replace("x2 = 2\n", "x2 = 22\n").replace("x29 = 29\nx30 = 30\n", "")
THREADS = """query($owner: String!, $name: String!, $number: Int!) {
  repository(owner: $owner, name: $name) { pullRequest(number: $number) { reviewThreads(first: 100) {
    nodes { id isResolved isOutdated path line comments(first: 50) { nodes { id databaseId body author { login } } } }
  } } } }"""


def valid(model: object, data: object) -> None:
    """Validate against githubkit's model, as ``response.parsed_data`` would."""
    type_validate_python(model, data)


def open_pull(gh: github.GitHubDouble, http: httpx.Client, branch: str = "feat", files: dict | None = None,
              body: str = "") -> dict:
    """The bot opens a PR from ``branch`` (forked from main) changing src/long.py (or ``files``)."""
    gh.commit_files(REPO, branch, files or {"src/long.py": FEAT}, "Change long", base="main")
    created = http.post(f"/repos/{REPO}/pulls", json={"title": "Change", "head": branch, "base": "main",
                                                      "body": body})
    assert created.status_code == 201, created.text
    return created.json()


def test_pull_files_diff_and_compare(github_double, app_keypair):
    gh = github_double
    gh.commit_files(REPO, "main", {"src/long.py": LONG, "old.txt": "same\n" * 5, "gone.txt": "bye\n"}, "Seed")
    files = {"src/long.py": FEAT, "logo.png": b"\x89PNG\x00\x01", "old.txt": None, "renamed.txt": "same\n" * 5,
             "gone.txt": None, "new.txt": "n\n"}
    with client(gh, mint(gh, app_keypair[0])) as http:
        pr = open_pull(gh, http, files=files)
        n = pr["number"]
        assert (pr["commits"], pr["changed_files"], pr["additions"], pr["deletions"]) == (1, 5, 2, 4)
        first = http.get(f"/repos/{REPO}/pulls/{n}/files", params={"per_page": 3})
        assert 'rel="next"' in first.headers["link"]
        listed = first.json() + http.get(f"/repos/{REPO}/pulls/{n}/files", params={"per_page": 3, "page": 2}).json()
        valid(list[gk.DiffEntry], listed)
        by_name = {f["filename"]: f for f in listed}
        assert {k: (f["status"], f["changes"]) for k, f in by_name.items()} == {
            "gone.txt": ("removed", 1), "logo.png": ("added", 0), "new.txt": ("added", 1),
            "renamed.txt": ("renamed", 0), "src/long.py": ("modified", 4)}
        assert "patch" not in by_name["logo.png"] and by_name["renamed.txt"]["previous_filename"] == "old.txt"
        assert by_name["new.txt"]["patch"] == "@@ -0,0 +1 @@\n+n"
        assert by_name["src/long.py"]["patch"].startswith("@@ -1,5 +1,5 @@\n x1 = 1\n-x2 = 2\n+x2 = 22\n")

        diff = http.get(f"/repos/{REPO}/pulls/{n}", headers={"Accept": "application/vnd.github.diff"})
        assert diff.text.startswith("diff --git a/gone.txt b/gone.txt") and "+x2 = 22\n" in diff.text
        assert "Binary files /dev/null and b/logo.png differ" in diff.text

        gh.commit_files(REPO, "main", {"README.md": "# moved on\n"}, "Main moves")
        compared = http.get(f"/repos/{REPO}/compare/main...feat").json()
        valid(gk.CommitComparison, compared)
        assert (compared["status"], compared["ahead_by"], compared["behind_by"]) == ("diverged", 1, 1)
        assert [c["commit"]["message"] for c in compared["commits"]] == ["Change long"]
        assert sorted(f["filename"] for f in compared["files"]) == sorted(by_name)  # three-dot: main's move unseen
        assert [f["filename"] for f in http.get(f"/repos/{REPO}/pulls/{n}/files").json()] == list(by_name)
        commits = http.get(f"/repos/{REPO}/pulls/{n}/commits").json()
        valid(list[gk.Commit], commits)
        assert [c["sha"] for c in commits] == [gh.branch_sha(REPO, "feat")]


def test_review_comments_must_sit_on_the_diff(github_double, app_keypair):
    gh = github_double
    gh.commit_files(REPO, "main", {"src/long.py": LONG}, "Seed")
    with client(gh, mint(gh, app_keypair[0])) as http:
        n = open_pull(gh, http)["number"]
        url = f"/repos/{REPO}/pulls/{n}/reviews"

        def review(*comments: dict, event: str = "COMMENT") -> httpx.Response:
            specs = [{"path": "src/long.py", "body": "note", **c} for c in comments]
            return http.post(url, json={"event": event, "body": "Critique", "comments": specs})

        accepted = review({"line": 2}, {"line": 3}, {"line": 28, "start_line": 26}, {"line": 30, "side": "LEFT"})
        assert accepted.status_code == 200, accepted.text
        valid(gk.PullRequestReview, accepted.json())
        assert accepted.json()["state"] == "COMMENTED" and accepted.json()["user"]["login"] == "mull-test[bot]"
        for bad in ({"line": 15}, {"line": 29}, {"line": 2, "side": "LEFT", "start_line": 30, "start_side": "LEFT"},
                    {"line": 27, "start_line": 3}, {"line": 1, "path": "README.md"}):
            rejected = review({"line": 2}, bad)
            assert rejected.status_code == 422, bad
            assert rejected.json()["message"] == "Unprocessable Entity"
        assert review({"line": 15}).json()["errors"] == ["Line could not be resolved"]
        assert review({"line": 29}).json()["errors"] == ["Line could not be resolved"]  # deleted: LEFT only
        assert len(gh.reviews(REPO, n)) == 1 and len(gh.review_comments(REPO, n)) == 4  # all-or-nothing
        own = http.post(url, json={"event": "REQUEST_CHANGES", "body": "No"})
        assert own.json()["errors"] == ["Review Can not request changes on your own pull request"]

        listed = http.get(f"/repos/{REPO}/pulls/{n}/comments").json()
        valid(list[gk.PullRequestReviewComment], listed)
        assert [(c["line"], c["side"], c["start_line"]) for c in listed] == [
            (2, "RIGHT", None), (3, "RIGHT", None), (28, "RIGHT", 26), (30, "LEFT", None)]
        first = listed[0]
        assert first["pull_request_review_id"] == accepted.json()["id"] and "in_reply_to_id" not in first
        assert first["diff_hunk"] == "@@ -1,5 +1,5 @@\n x1 = 1\n-x2 = 2\n+x2 = 22"
        assert first["commit_id"] == gh.branch_sha(REPO, "feat") and first["user"]["type"] == "Bot"
        replied = http.post(f"/repos/{REPO}/pulls/{n}/comments/{first['id']}/replies", json={"body": "Also"})
        assert replied.status_code == 201
        assert (replied.json()["in_reply_to_id"], replied.json()["line"]) == (first["id"], 2)
        edited = http.patch(f"/repos/{REPO}/pulls/comments/{replied.json()['id']}", json={"body": "Edited"})
        assert edited.json()["body"] == "Edited"
        assert http.delete(f"/repos/{REPO}/pulls/comments/{listed[1]['id']}").status_code == 204
        assert http.get(f"/repos/{REPO}/pulls/comments/{listed[1]['id']}").status_code == 404
        assert [r["state"] for r in http.get(url).json()] == ["COMMENTED", "COMMENTED"]  # a reply is a review
    gh.hooks.wait_idle()
    assert [(d.event, d.action) for d in gh.deliveries[1:]] == [
        ("pull_request_review", "submitted"), *[("pull_request_review_comment", "created")] * 4,
        ("pull_request_review_comment", "created"), ("pull_request_review", "submitted"),
        ("pull_request_review_comment", "edited"), ("pull_request_review_comment", "deleted")]
    submitted = gh.deliveries[1]
    assert submitted.payload["review"]["state"] == "commented" and submitted.payload["sender"]["type"] == "Bot"
    assert submitted.payload["pull_request"]["number"] == n
    GitHub.webhooks.parse("pull_request_review", submitted.body)
    GitHub.webhooks.parse("pull_request_review_comment", gh.deliveries[2].body)


def test_people_review_threads_and_graphql(github_double, app_keypair):
    gh = github_double
    gh.commit_files(REPO, "main", {"src/long.py": LONG}, "Seed")
    gh.set_permission(REPO, "alice", "write")
    with client(gh, mint(gh, app_keypair[0])) as http:
        pr = open_pull(gh, http)
        n = pr["number"]
        review = gh.review(REPO, n, "alice", body="Please fix", comments=[
            ("src/long.py", 2, "Why 22?"), {"path": "src/long.py", "line": 30, "side": "LEFT", "body": "Keep"}])
        assert review.state == "CHANGES_REQUESTED"
        assert [(d.event, d.action) for d in gh.deliveries[-3:]] == [
            ("pull_request_review", "submitted"), ("pull_request_review_comment", "created"),
            ("pull_request_review_comment", "created")]
        hook = gh.deliveries[-3].payload
        assert (hook["review"]["state"], hook["review"]["body"], hook["sender"]["login"]) == \
            ("changes_requested", "Please fix", "alice")
        with pytest.raises(github_http.ApiError) as refused:
            gh.review(REPO, n, "alice", comments=[("src/long.py", 15, "Out of the diff")])
        assert refused.value.errors == ["Line could not be resolved"]

        root, left = gh.review_comments(REPO, n)
        done = http.post(f"/repos/{REPO}/pulls/{n}/comments/{root.id}/replies", json={"body": "Done"})
        assert done.status_code == 201
        thanks = gh.review_comment(REPO, n, "alice", "src/long.py", 2, "Thanks", in_reply_to=root.id)
        assert thanks.in_reply_to_id == root.id
        assert [(d.event, d.action) for d in gh.deliveries[-2:]] == [
            ("pull_request_review_comment", "created"), ("pull_request_review", "submitted")]
        assert gh.deliveries[-1].payload["review"]["state"] == "commented"
        gh.resolve_thread(REPO, thanks.id, "alice")
        resolved = gh.deliveries[-1]
        assert (resolved.event, resolved.action) == ("pull_request_review_thread", "resolved")
        assert [c["body"] for c in resolved.payload["thread"]["comments"]] == ["Why 22?", "Done", "Thanks"]
        GitHub.webhooks.parse("pull_request_review_thread", resolved.body)

        def threads() -> list[dict]:
            variables = {"owner": "acme", "name": "widgets", "number": n}
            data = http.post("/graphql", json={"query": THREADS, "variables": variables}).json()
            return data["data"]["repository"]["pullRequest"]["reviewThreads"]["nodes"]

        first, second = threads()
        assert (first["id"], first["isResolved"], first["isOutdated"], first["path"], first["line"]) == \
            (f"PRRT_{root.id}", True, False, "src/long.py", 2)
        assert [(c["databaseId"], c["author"]["login"]) for c in first["comments"]["nodes"]] == [
            (root.id, "alice"), (done.json()["id"], "mull-test"), (thanks.id, "alice")]  # GraphQL drops "[bot]"
        assert (second["isResolved"], second["line"]) == (False, 30)

        gh.push_as(REPO, "feat", {"src/long.py": FEAT.replace("x2 = 22", "x2 = 23")}, "alice")
        first, second = threads()
        assert (first["isOutdated"], first["line"], second["isOutdated"]) == (True, None, False)
        outdated = http.get(f"/repos/{REPO}/pulls/comments/{root.id}").json()
        assert (outdated["line"], outdated["original_line"], outdated["position"]) == (None, 2, None)

        unresolve = 'mutation { unresolveReviewThread(input: {threadId: "%s"}) { thread { isResolved } } }'
        reopened = http.post("/graphql", json={"query": unresolve % first["id"]}).json()
        assert reopened["data"]["unresolveReviewThread"]["thread"]["isResolved"] is False
        draft = ("mutation($id: ID!) { convertPullRequestToDraft(input: {pullRequestId: $id}) "
                 "{ pullRequest { isDraft } } }")
        converted = http.post("/graphql", json={"query": draft, "variables": {"id": pr["node_id"]}}).json()
        assert converted["data"]["convertPullRequestToDraft"]["pullRequest"]["isDraft"] is True
        http.post("/graphql", json={"query": READY, "variables": {"id": pr["node_id"]}})
        missing = http.post("/graphql", json={"query": THREADS, "variables": {"owner": "acme", "name": "nope",
                                                                            "number": 1}}).json()
        assert missing["data"] == {"repository": None} and missing["errors"][0]["type"] == "NOT_FOUND"
    gh.hooks.wait_idle()
    assert [(d.action, d.payload["sender"]["login"]) for d in gh.deliveries[-3:]] == [
        ("unresolved", "mull-test[bot]"), ("converted_to_draft", "mull-test[bot]"),
        ("ready_for_review", "mull-test[bot]")]


def test_ci_checks_helpers_and_routes(github_double, app_keypair):
    gh = github_double
    gh.commit_files(REPO, "main", {"src/long.py": LONG}, "Seed")
    with client(gh, mint(gh, app_keypair[0])) as http:
        pr = open_pull(gh, http)
        sha = pr["head"]["sha"]
        lint = gh.start_check(REPO, sha, "lint")
        tests = gh.complete_check(REPO, sha, "tests", "failure", title="1 test failed", summary="test_x failed",
                                  text="AssertionError: 22 != 2", annotations=[
                                      {"path": "src/long.py", "start_line": 2, "end_line": 2, "message": "boom"}])
        assert not gh.hooks.find("check_suite")  # lint still runs
        gh.complete_check(REPO, "feat", "lint", "success")
        assert [(d.event, d.action) for d in gh.deliveries[1:]] == [
            ("check_run", "created"), ("check_run", "completed"), ("check_run", "completed"),
            ("check_suite", "completed")]
        run = gh.deliveries[2].payload["check_run"]
        suite = gh.deliveries[-1].payload["check_suite"]
        assert (run["name"], run["conclusion"], run["head_sha"], run["check_suite"]["id"]) == \
            ("tests", "failure", sha, suite["id"])
        assert run["output"] | {"annotations_url": None} == {
            "title": "1 test failed", "summary": "test_x failed", "text": "AssertionError: 22 != 2",
            "annotations_count": 1, "annotations_url": None}
        assert (suite["head_branch"], suite["head_sha"], suite["status"], suite["conclusion"]) == \
            ("feat", sha, "completed", "failure")
        assert suite["app"]["slug"] == "github-actions" and gh.deliveries[-1].payload["sender"]["login"] == "acme"
        (linked,) = suite["pull_requests"]
        assert (linked["number"], linked["head"], linked["base"]["ref"]) == \
            (pr["number"], {**linked["head"], "ref": "feat", "sha": sha}, "main")
        for delivery in gh.deliveries[2::2]:
            GitHub.webhooks.parse(delivery.event, delivery.body)

        runs = http.get(f"/repos/{REPO}/commits/feat/check-runs").json()
        valid(gk.ReposOwnerRepoCommitsRefCheckRunsGetResponse200, runs)
        assert runs["total_count"] == 2 and {r["name"] for r in runs["check_runs"]} == {"lint", "tests"}
        only = http.get(f"/repos/{REPO}/commits/{sha}/check-runs", params={"check_name": "tests"}).json()
        assert [r["id"] for r in only["check_runs"]] == [tests.id]
        one = http.get(f"/repos/{REPO}/check-runs/{lint.id}").json()
        assert (one["status"], one["conclusion"]) == ("completed", "success")
        notes = http.get(f"/repos/{REPO}/check-runs/{tests.id}/annotations").json()
        valid(list[gk.CheckAnnotation], notes)
        assert [(a["path"], a["start_line"], a["message"], a["annotation_level"]) for a in notes] == [
            ("src/long.py", 2, "boom", "failure")]
        suites = http.get(f"/repos/{REPO}/commits/{sha}/check-suites").json()
        valid(gk.ReposOwnerRepoCommitsRefCheckSuitesGetResponse200, suites)
        assert [(s["id"], s["conclusion"], s["latest_check_runs_count"]) for s in suites["check_suites"]] == [
            (suite["id"], "failure", 2)]
        assert http.get(f"/repos/{REPO}/commits/nope/check-runs").status_code == 422
        assert http.get(f"/repos/{REPO}/commits/main/check-runs").json() == {"total_count": 0, "check_runs": []}


def test_merge_closes_linked_issues_and_backlog_helpers(github_double, app_keypair):
    gh = github_double
    gh.commit_files(REPO, "main", {"src/long.py": LONG}, "Seed")
    gh.set_permission(REPO, "alice", "write")
    bug = gh.create_issue(REPO, "Off by one", "", "alice")
    other = gh.create_issue(REPO, "Unrelated", "", "alice")
    with client(gh, mint(gh, app_keypair[0])) as http:
        pr = open_pull(gh, http, body=f"Critique done.\n\nFixes #{bug.number}")
        n = pr["number"]
        asked = f"/repos/{REPO}/pulls/{n}/requested_reviewers"
        assert http.post(asked, json={"reviewers": ["stranger"]}).status_code == 422
        assert "author" in http.post(asked, json={"reviewers": ["mull-test[bot]"]}).json()["message"]
        assert http.post(asked, json={"reviewers": ["alice"]}).status_code == 201
        assert [u["login"] for u in http.get(asked).json()["users"]] == ["alice"]
        requested = gh.wait_for_delivery("pull_request", "review_requested")[0].payload
        assert requested["requested_reviewer"]["login"] == "alice"
        gh.review(REPO, n, "alice", "approved")
        assert http.get(asked).json()["users"] == []  # reviewing answers the request

        sha = gh.merge_pull(REPO, n, "alice")
        assert gh.branch_sha(REPO, "main") == sha and gh.branch_files(REPO, "main")["src/long.py"] == FEAT
        assert len(gh.git(REPO, "rev-list", "--parents", "-n1", sha).split()) == 3  # a merge commit
        merged = http.get(f"/repos/{REPO}/pulls/{n}").json()
        assert (merged["state"], merged["merged"], merged["merged_by"]["login"], merged["merge_commit_sha"]) == \
            ("closed", True, "alice", sha)
        assert merged["changed_files"] == 1 and len(http.get(f"/repos/{REPO}/pulls/{n}/files").json()) == 1
        assert [(d.event, d.action, d.payload["sender"]["login"]) for d in gh.deliveries[-3:]] == [
            ("push", None, "alice"), ("pull_request", "closed", "alice"), ("issues", "closed", "alice")]
        assert gh.deliveries[-2].payload["pull_request"]["merged"] is True
        assert gh.deliveries[-1].payload["issue"]["number"] == bug.number
        assert (gh.issue(REPO, bug.number).state, gh.issue(REPO, bug.number).state_reason) == ("closed", "completed")
        assert gh.issue(REPO, other.number).state == "open"
        assert http.put(f"/repos/{REPO}/pulls/{n}/merge").status_code == 405

        squash = open_pull(gh, http, "feat2", {"new.txt": "n\n"})
        merged_by_bot = http.put(f"/repos/{REPO}/pulls/{squash['number']}/merge", json={"merge_method": "squash"})
        valid(gk.PullRequestMergeResult, merged_by_bot.json())
        assert gh.branch_commits(REPO, "main")[0]["message"].startswith(f"Change (#{squash['number']})")

        third = open_pull(gh, http, "feat3", {"third.txt": "3\n"})["number"]
        gh.convert_to_draft(REPO, third, "alice")
        assert gh.pulls(REPO)[-1].draft is True and gh.deliveries[-1].action == "converted_to_draft"
        gh.close_issue(REPO, third, "alice")
        assert gh.deliveries[-1].payload["pull_request"]["merged"] is False
        assert http.patch(f"/repos/{REPO}/pulls/{third}", json={"state": "open"}).json()["state"] == "open"
        gh.close_issue(REPO, other.number, "alice", reason="not_planned")
        assert gh.deliveries[-1].payload["issue"]["state_reason"] == "not_planned"
    gh.hooks.wait_idle()
    assert [d.action for d in gh.hooks.find("pull_request")][-3:] == ["converted_to_draft", "closed", "reopened"]


def test_push_as_synchronizes_open_pulls(github_double, app_keypair):
    gh = github_double
    with client(gh, mint(gh, app_keypair[0])) as http:
        pr = open_pull(gh, http, files={"NOTES.md": "v1\n"})
    after = gh.push_as(REPO, "feat", {"NOTES.md": "v2\n"}, "alice", "Edit notes")
    push, sync = gh.deliveries[-2:]
    assert (push.event, push.payload["ref"], push.payload["before"], push.payload["after"]) == \
        ("push", "refs/heads/feat", pr["head"]["sha"], after)
    assert push.payload["sender"]["login"] == "alice" and push.payload["pusher"]["name"] == "alice"
    assert push.payload["head_commit"]["message"] == "Edit notes"
    assert (sync.action, sync.payload["before"], sync.payload["after"]) == ("synchronize", pr["head"]["sha"], after)
    assert sync.payload["pull_request"]["head"]["sha"] == after and sync.payload["sender"]["login"] == "alice"
    gh.push_as(REPO, "side", {"side.txt": "s\n"}, "bob")
    assert gh.deliveries[-1].payload["created"] is True and gh.deliveries[-1].event == "push"
    assert "README.md" in gh.branch_files(REPO, "side")  # a new branch starts from the default branch
    GitHub.webhooks.parse("push", push.body)


# -- GitHub double: issues the bot opens, lists and edits (the review-queue dashboard) -----------------


def test_bot_opens_lists_and_edits_issues(github_double, app_keypair):
    gh = github_double
    gh.set_permission(REPO, "alice", "write")
    bug = gh.create_issue(REPO, "Bug", "", "alice", labels=["bug"])
    with client(gh, mint(gh, app_keypair[0])) as http:
        issues = f"/repos/{REPO}/issues"
        missing = http.post(issues, json={"body": "no title"})
        assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "title"
        assert http.post(issues, json={"title": "  "}).status_code == 422
        assert http.post(issues, json={"title": "x", "assignees": ["stranger"]}).status_code == 422
        created = http.post(issues, json={"title": "Mull review queue", "body": "v1", "labels": ["mull:dashboard"],
                                          "assignees": ["alice"]})
        assert created.status_code == 201, created.text
        dashboard = created.json()
        valid(gk.Issue, dashboard)
        assert (dashboard["number"], dashboard["user"]["login"], dashboard["body"]) == (2, "mull-test[bot]", "v1")
        assert [label["name"] for label in dashboard["labels"]] == ["mull:dashboard"]
        assert [user["login"] for user in dashboard["assignees"]] == [dashboard["assignee"]["login"]] == ["alice"]
        assert "pull_request" not in dashboard
        pull = open_pull(gh, http, files={"NOTES.md": "n\n"})["number"]
        gh.close_issue(REPO, bug.number, "alice")

        def numbers(**params: object) -> list[int]:
            listed = http.get(issues, params=params)
            assert listed.status_code == 200, listed.text
            for item in listed.json():
                valid(gk.Issue, item)
            return [item["number"] for item in listed.json()]

        assert numbers() == [pull, 2]  # open by default, newest first (same second: the higher number)
        assert "pull_request" in http.get(issues).json()[0]
        assert numbers(state="all") == [pull, 2, 1] and numbers(state="closed") == [1]
        assert numbers(state="all", sort="created", direction="asc") == [1, 2, pull]
        assert numbers(state="all", creator="mull-test[bot]") == [pull, 2]
        assert numbers(state="all", creator="ALICE") == [1]
        assert numbers(labels="mull:dashboard") == [2] and numbers(state="all", labels="BUG") == [1]
        assert numbers(state="all", labels="bug,mull:dashboard") == []
        paged = http.get(issues, params={"state": "all", "per_page": 1, "page": 2})
        assert [i["number"] for i in paged.json()] == [2] and 'rel="next"' in paged.headers["link"]
        assert http.get(issues, params={"state": "bogus"}).status_code == 422

        assert http.patch(f"{issues}/2", json={"body": "v1"}).status_code == 200  # unchanged: no edit
        edited = http.patch(f"{issues}/2", json={"body": "v2", "title": "Mull review queue!"})
        assert (edited.json()["body"], edited.json()["title"]) == ("v2", "Mull review queue!")
        assert http.patch(f"{issues}/2", json={"title": ""}).status_code == 422
    record = gh.issue(REPO, 2)
    assert (record.body, record.history, record.edits, record.user.login) == ("v2", ["v1"], 1, "mull-test[bot]")
    assert [(i.number, i.is_pull) for i in gh.issues(REPO)] == [(1, False), (2, False), (pull, True)]
    gh.hooks.wait_idle()
    ours = [d for d in gh.hooks.find("issues") if d.payload["issue"]["number"] == 2]
    assert [d.action for d in ours] == ["opened", "labeled", "assigned", "edited"]
    assert {d.payload["sender"]["login"] for d in ours} == {"mull-test[bot]"}
    assert ours[-1].payload["changes"] == {"title": {"from": "Mull review queue"}, "body": {"from": "v1"}}
    for delivery in ours:
        GitHub.webhooks.parse("issues", delivery.body)


# -- Scripted model server --------------------------------------------------------------------------


def test_model_walks_its_script_by_counting_assistant_messages(scripted_model):
    scripted_model.script("issue-7", [
        {"tool_calls": [{"name": "read_file", "arguments": {"path": "a.py"}}]},
        {"raw_arguments": {"name": "write_file", "arguments": "not json{"}},
        {"content": "done", "usage": {"prompt_tokens": 1000, "completion_tokens": 1, "total_tokens": 1001}},
    ])
    scripted_model.script("issue-8", [{"status": 500, "body": {"error": {"message": "boom"}}}])
    url = f"{scripted_model.url}/chat/completions"
    messages = [{"role": "system", "content": "x" * 40}, {"role": "user", "content": "fix issue-7"}]
    first = call("POST", url, json={"model": "m", "messages": messages}).json()
    assert first["choices"][0]["finish_reason"] == "tool_calls"
    tool_call = first["choices"][0]["message"]["tool_calls"][0]
    assert tool_call == {"id": "call_0", "type": "function",
                         "function": {"name": "read_file", "arguments": json.dumps({"path": "a.py"})}}
    assert first["usage"]["prompt_tokens"] == (40 + len("fix issue-7")) // 4
    messages += [first["choices"][0]["message"],
                 {"role": "tool", "tool_call_id": "call_0", "content": "x=1"}]
    second = call("POST", url, json={"model": "m", "messages": messages}).json()
    assert second["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == "not json{"
    assert second["choices"][0]["message"]["tool_calls"][0]["id"] == "call_1"
    messages.append(second["choices"][0]["message"])
    for _ in range(2):  # past the end the last turn repeats
        third = call("POST", url, json={"model": "m", "messages": messages}).json()
        assert third["choices"][0]["message"]["content"] == "done"
        assert third["usage"]["prompt_tokens"] == 1000
        messages.append(third["choices"][0]["message"])
    failed = call("POST", url, json={"model": "m", "messages": [{"role": "user", "content": "issue-8"}]})
    assert failed.status_code == 500 and failed.json() == {"error": {"message": "boom"}}
    unmatched = call("POST", url, json={"model": "m", "messages": [{"role": "user", "content": "hello"}]})
    assert unmatched.status_code == 400 and "no script matches" in unmatched.text
    assert [(r["key"], r["turn"]) for r in scripted_model.requests] == [
        ("issue-7", 0), ("issue-7", 1), ("issue-7", 2), ("issue-7", 3), ("issue-8", 0), (None, None)]


def test_model_scripts_over_http_and_sleep(scripted_model):
    base = scripted_model.base_url
    turns = [{"sleep": 0.3, "content": "slow"}]
    assert call("POST", f"{base}/_scripts", json={"key": "k-1", "turns": turns}).status_code == 201
    assert call("POST", f"{base}/_scripts", json={"key": "k-2", "turns": [{}]}).status_code == 400
    started = time.monotonic()
    parts = [{"type": "text", "text": "do k-1"}]
    reply = call("POST", f"{scripted_model.url}/chat/completions",
                 json={"messages": [{"role": "user", "content": parts}]})
    assert reply.json()["choices"][0]["message"]["content"] == "slow" and time.monotonic() - started >= 0.3
    assert call("GET", f"{scripted_model.url}/models").json()["data"][0]["id"] == "scripted"
    assert len(call("GET", f"{base}/_requests").json()) == 1
    call("POST", f"{base}/_reset")
    assert call("GET", f"{base}/_requests").json() == [] and scripted_model.scripts.scripts == {}


def test_model_meetings_hold_the_first_runs_until_they_are_all_there(scripted_model):
    """A ``meet`` turn answers its first ``count`` matching requests together; a lone one waits its timeout."""
    scripted_model.script("meet-", [{"meet": {"match": "meet-a", "count": 2, "timeout": 5}, "content": "a"}])
    scripted_model.script("alone-", [{"meet": {"match": "alone-b", "count": 2, "timeout": 0.3}, "content": "b"}])
    url = f"{scripted_model.url}/chat/completions"

    def ask(text: str) -> float:
        call("POST", url, json={"messages": [{"role": "user", "content": text}]})
        return time.monotonic()

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = pool.submit(ask, "meet-a 1")
        time.sleep(0.5)
        assert not first.done()  # waits for the second
        second_sent = time.monotonic()
        second = pool.submit(ask, "meet-a 2")
        assert first.result(5) >= second_sent and second.result(5) >= second_sent
    started = time.monotonic()
    assert ask("meet-a 3") - started < 0.3  # the meeting is over: later requests pass
    assert ask("alone-b 1") - started >= 0.3  # nobody came: it answers at its timeout
    assert ask("meet-other") - started < 1  # no match in its messages: no meeting


def test_openai_client_parses_tool_calls_and_streams(scripted_model):
    scripted_model.script("issue-9", [
        {"content": "Reading first.", "tool_calls": [{"name": "read_file", "arguments": {"path": "a.py"}},
                                                     {"name": "list_dir", "arguments": {}}]},
        {"content": "all done"},
    ])

    async def scenario():
        async with AsyncOpenAI(base_url=scripted_model.url, api_key="x", max_retries=0) as llm:
            messages = [{"role": "user", "content": "issue-9"}]
            reply = await llm.chat.completions.create(model="scripted", messages=messages)
            calls = reply.choices[0].message.tool_calls
            assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
                ("call_0", "read_file", {"path": "a.py"}), ("call_1", "list_dir", {})]
            assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens

            stream = await llm.chat.completions.create(model="scripted", messages=messages, stream=True,
                                                       stream_options={"include_usage": True})
            chunks = [chunk async for chunk in stream]
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            args = {}
            for c in chunks:
                for delta in (c.choices[0].delta.tool_calls or []) if c.choices else []:
                    args[delta.index] = args.get(delta.index, "") + (delta.function.arguments or "")
            assert text == "Reading first." and json.loads(args[0]) == {"path": "a.py"}
            assert chunks[-1].usage.completion_tokens == reply.usage.completion_tokens

            messages += [reply.choices[0].message.model_dump(exclude_none=True),
                         {"role": "tool", "tool_call_id": "call_0", "content": "x"},
                         {"role": "tool", "tool_call_id": "call_1", "content": "y"}]
            final = await llm.chat.completions.create(model="scripted", messages=messages)
            assert final.choices[0].message.content == "all done" and final.choices[0].finish_reason == "stop"

    asyncio.run(scenario())
    assert scripted_model.requests_for("issue-9")[-1]["body"]["messages"][-1]["content"] == "y"


def test_model_server_runs_standalone(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    scripts = tmp_path / "scripts.json"
    scripts.write_text(json.dumps({"hello-key": [{"content": "hi"}]}))
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tests.doubles.model_server", "--port", str(port),
                                 "--scripts", str(scripts)], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                reply = call("POST", f"http://127.0.0.1:{port}/v1/chat/completions",
                             json={"messages": [{"role": "user", "content": "hello-key"}]})
                break
            except httpx.ConnectError:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
        assert reply.json()["choices"][0]["message"]["content"] == "hi"
    finally:
        proc.terminate()
        proc.wait(5)


def test_settle_counts_running_jobs_not_the_minute_arq_keeps_after_a_cron_job(redis_url):
    """A non-unique cron job leaves an in-progress key under a random id for 60 s after it ran; settle must not
    wait for it, yet must wait for a job that is still running."""
    import redis as redis_sync
    from arq import cron
    from arq.connections import RedisSettings, create_pool
    from arq.worker import Worker, func

    try:
        from doubles.e2e import held_jobs
    except ModuleNotFoundError:
        from tests.doubles.e2e import held_jobs  # type: ignore[no-redef]

    release = asyncio.Event()

    async def tidy(ctx):
        return None

    async def slow(ctx):
        await release.wait()

    async def until(check, what: str) -> None:
        for _ in range(1000):
            if check():
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"timed out waiting for {what}")

    async def scenario() -> tuple[list[bytes], list[bytes], list[bytes]]:
        settings = RedisSettings.from_dsn(redis_url)
        pool = await create_pool(settings)
        worker = Worker([func(slow, name="slow")], cron_jobs=[cron(tidy, unique=False, run_at_startup=True)],
                        redis_pool=pool, burst=False, poll_delay=0.01, handle_signals=False, keep_result=0)
        running = asyncio.ensure_future(worker.async_run())
        conn = redis_sync.Redis.from_url(redis_url)
        try:
            await until(lambda: worker.jobs_complete >= 1, "the cron job run at start-up")
            after_cron = list(conn.scan_iter(match="arq:in-progress:*"))
            settled_after_cron = held_jobs(conn)
            await pool.enqueue_job("slow", _job_id="slow-one")
            await until(lambda: conn.exists("arq:in-progress:slow-one"), "the slow job to start")
            during_slow = held_jobs(conn)
            release.set()
            return after_cron, settled_after_cron, during_slow
        finally:
            running.cancel()
            await worker.close()
            conn.close()

    after_cron, settled_after_cron, during_slow = asyncio.run(scenario())
    assert len(after_cron) == 1 and not after_cron[0].startswith(b"arq:in-progress:cron:")
    assert settled_after_cron == []
    assert during_slow == [b"arq:in-progress:slow-one"]
