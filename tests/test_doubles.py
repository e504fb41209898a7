"""The doubles behave like the services they stand in for, so end-to-end failures point at Mull."""

from __future__ import annotations

import asyncio
import base64
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
from githubkit.exception import PrimaryRateLimitExceeded, RequestFailed
from openai import AsyncOpenAI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

try:  # pytest's default import mode puts tests/ (it has no __init__.py) on sys.path
    from doubles import fixtures, github, server
except ModuleNotFoundError:  # tests/ became a package; imported by name so mypy sees one module path
    fixtures, github, server = (importlib.import_module(f"tests.doubles.{name}")  # type: ignore[assignment]
                                for name in ("fixtures", "github", "server"))

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
