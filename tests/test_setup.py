"""First run: /setup registers the GitHub App from app-manifest.yml and writes its credentials to .env."""

from __future__ import annotations

import html
import io
import json
import re
import stat
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx
import yaml
from doubles.github import generate_app_keypair
from doubles.mull_process import MULL, MullProcess, free_port
from starlette.testclient import TestClient

from bot import logs
from bot.receiver import create_app
from bot.settings import MullSettings, load_settings
from bot.setup import create_setup_app, github_web_url

MANIFEST = yaml.safe_load((Path(__file__).parent.parent / "app-manifest.yml").read_text())
PEM = generate_app_keypair(1024)[0]  # a real key: Mull parses the App key when it loads it
CONVERSION = {"id": 4242, "slug": "mull-acme", "pem": PEM, "webhook_secret": "0f" * 20, "client_id": "Iv1.abc",
              "client_secret": "c" * 40, "html_url": "https://github.com/apps/mull-acme", "name": "Mull"}
CONVERT = "https://api.github.com/app-manifests/code123/conversions"
CODE = "console-code-1234"
HOOK = "https://hooks.example.com/webhooks/github"
ANSWERS = {"owner": "user", "org": "", "host": "github.com", "enterprise_url": "", "webhook_url": HOOK}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def settings(**values: str) -> MullSettings:
    return load_settings({f"MULL_{k.upper()}": v for k, v in values.items()}, env_file=None)


def setup_client(tmp_path: Path, clock: Clock | None = None, **values: str) -> TestClient:
    return TestClient(create_setup_app(settings(**values), tmp_path / ".env", clock=clock or Clock(), code=CODE))


def open_setup(client: TestClient, code: str = CODE) -> httpx.Response:
    """The setup page as the operator opens it: with the code from the console."""
    return client.post("/setup", data={"code": code})


def choose(client: TestClient, code: str = CODE, **answers: str) -> httpx.Response:
    """The choices page submitted: a personal account's App on GitHub.com with a public webhook URL, unless told."""
    return client.post("/setup", data={"code": code, "step": "choose", **ANSWERS, **answers})


def form(page: str) -> tuple[str, dict]:
    """The create form's action and its manifest, as a browser would submit them."""
    action = re.search(r'<form method=post action="([^"]+)" id=create>', page)
    manifest = re.search(r'name=manifest value="([^"]+)"', page)
    assert action and manifest, page
    return html.unescape(action.group(1)), json.loads(html.unescape(manifest.group(1)))


def state_of(action: str) -> str:
    return parse_qs(urlsplit(action).query)["state"][0]


@pytest.mark.parametrize(("api", "web"), [
    ("https://api.github.com", "https://github.com"),
    ("https://ghe.example.com/api/v3", "https://ghe.example.com"),
    ("https://api.acme.ghe.com", "https://acme.ghe.com"),
])
def test_the_web_host_comes_from_the_rest_url(api: str, web: str) -> None:
    assert github_web_url(api) == web


@pytest.mark.parametrize(("answers", "new_app"), [
    ({}, "https://github.com/settings/apps/new"),
    ({"host": "enterprise", "enterprise_url": "https://ghe.example.com"}, "https://ghe.example.com/settings/apps/new"),
    ({"owner": "org", "org": "acme"}, "https://github.com/organizations/acme/settings/apps/new"),
    ({"owner": "org", "org": "acme-corp", "host": "enterprise", "enterprise_url": "https://ghe.example.com/api/v3/"},
     "https://ghe.example.com/organizations/acme-corp/settings/apps/new"),
])
def test_setup_page_posts_the_manifest_where_the_operator_chose(tmp_path: Path, answers: dict, new_app: str) -> None:
    response = choose(setup_client(tmp_path), **answers)
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    action, manifest = form(response.text)
    assert action.split("?")[0] == new_app and len(state_of(action)) >= 40
    assert manifest["default_events"] == MANIFEST["default_events"]
    assert manifest["default_permissions"] == MANIFEST["default_permissions"]
    assert manifest["redirect_url"] == "http://testserver/setup/callback"  # the browser comes back to Mull
    assert manifest["hook_attributes"] == {"url": HOOK, "active": True}
    assert manifest["url"] == "https://hooks.example.com" and manifest["name"] == MANIFEST["name"]
    assert manifest["callback_urls"] == ["https://hooks.example.com/login/github/callback"]  # session sign-in


@pytest.mark.parametrize(("values", "checked", "filled"), [
    ({}, ["owner-user", "host-github-com"], {"org": "", "enterprise_url": ""}),
    ({"github_org": "acme"}, ["owner-org", "host-github-com"], {"org": "acme"}),
    ({"github_url": "https://ghe.example.com/api/v3"}, ["owner-user", "host-enterprise"],
     {"enterprise_url": "https://ghe.example.com"}),
])
def test_the_choices_start_from_the_settings(tmp_path: Path, values: dict, checked: list, filled: dict) -> None:
    page = open_setup(setup_client(tmp_path, **values)).text
    for ident in checked:
        assert re.search(rf"id={ident} value=\"[^\"]+\" checked>", page), ident
    for name, value in filled.items():
        assert f'name={name} id={name} ' in page and re.search(rf'id={name} [^>]*value="{re.escape(value)}"', page)
    assert "settings/apps/new" not in page  # nothing goes to GitHub before the answers are checked
    assert "set-cookie" not in open_setup(setup_client(tmp_path, **values)).headers


@pytest.mark.parametrize(("answers", "field", "says"), [
    ({"owner": "org", "org": "acme corp"}, "org", "'acme corp' is not an organisation name"),
    ({"owner": "org", "org": "-acme"}, "org", "not starting or ending with a hyphen"),
    ({"owner": "org", "org": "a" * 40}, "org", "at most 39 characters"),
    ({"owner": "org", "org": ""}, "org", "Enter the organisation's name"),
    ({"owner": "someone"}, "owner", "Choose who owns the App"),
    ({"host": "enterprise", "enterprise_url": "http://ghe.example.com"}, "enterprise_url",
     "with https:// (e.g. https://ghe.example.com)"),
    ({"host": "enterprise", "enterprise_url": "ghe.example.com"}, "enterprise_url", "e.g. https://ghe.example.com"),
    ({"host": "enterprise", "enterprise_url": "https://ghe.example.com/acme"}, "enterprise_url",
     "use https://ghe.example.com (without /acme)"),
    ({"host": "enterprise", "enterprise_url": "https://github.com"}, "enterprise_url", "choose GitHub.com"),
    ({"host": "enterprise", "enterprise_url": ""}, "enterprise_url", "Enter your GitHub Enterprise Server"),
    ({"host": "gitlab.com"}, "host", "Choose GitHub.com or GitHub Enterprise Server"),
    ({"webhook_url": "http://127.0.0.1:8000/webhooks/github"}, "webhook_url", "should start with https://"),
    ({"webhook_url": "https://127.0.0.1:8000/webhooks/github"}, "webhook_url", "GitHub refuses webhook URLs on 127.0"),
    ({"webhook_url": "https://localhost/webhooks/github"}, "webhook_url", "GitHub refuses webhook URLs on localhost"),
    ({"webhook_url": "https://[::1]/webhooks/github"}, "webhook_url", "GitHub refuses webhook URLs on ::1"),
    ({"webhook_url": "https://mull.localhost/webhooks/github"}, "webhook_url", "GitHub refuses webhook URLs"),
    ({"webhook_url": "https://10.1.2.3/webhooks/github"}, "webhook_url", "GitHub.com cannot reach 10.1.2.3"),
    ({"webhook_url": "https://mybox.local/webhooks/github"}, "webhook_url", "GitHub.com cannot reach mybox.local"),
    ({"webhook_url": "https://mybox/webhooks/github"}, "webhook_url", "GitHub.com cannot reach mybox"),
    ({"webhook_url": "https://user:pw@hooks.example.com/h"}, "webhook_url", "without spaces or a password"),
    ({"webhook_url": ""}, "webhook_url", "Enter the webhook URL"),
    ({"host": "enterprise", "enterprise_url": "https://ghe.example.com",
      "webhook_url": "https://127.0.0.1/webhooks/github"}, "webhook_url", "GitHub refuses webhook URLs on 127.0.0.1"),
])
def test_bad_answers_say_what_to_fix_and_go_nowhere(tmp_path: Path, answers: dict, field: str, says: str) -> None:
    response = choose(setup_client(tmp_path), **answers)
    assert response.status_code == 400
    page = html.unescape(response.text)
    problem = re.search(rf'<p class=problem id={field}-problem>([^<]+)</p>', page)
    assert problem and says in problem.group(1), page
    assert "Fix this and press Continue" in page and page.count("class=problem ") == 1
    assert "settings/apps/new" not in page and "name=manifest" not in page and "set-cookie" not in response.headers
    for name, value in {**ANSWERS, **answers}.items():  # the form keeps what was typed, to correct it
        if name in ("org", "enterprise_url", "webhook_url"):
            assert re.search(rf'id={name} [^>]*value="{re.escape(value)}"', page), name
    if field == "webhook_url":
        assert "cloudflared tunnel --url http://127.0.0.1:8000" in page and "smee.io" in page


def test_a_github_enterprise_server_may_reach_private_addresses(tmp_path: Path) -> None:
    response = choose(setup_client(tmp_path), host="enterprise", enterprise_url="https://ghe.corp.example",
                      webhook_url="https://10.1.2.3/webhooks/github")
    action, manifest = form(response.text)
    assert response.status_code == 200 and action.startswith("https://ghe.corp.example/settings/apps/new?state=")
    assert manifest["hook_attributes"]["url"] == "https://10.1.2.3/webhooks/github"
    assert "MULL_GITHUB_URL=https://ghe.corp.example/api/v3" in response.text  # the page says what it will write


def test_the_answers_can_be_changed_before_going_to_github(tmp_path: Path) -> None:
    client = setup_client(tmp_path)
    page = choose(client, owner="org", org="acme").text
    change = re.search(r'<form method=post action=/setup>(.*?)</form>', page.split("id=create>", 1)[1])
    assert change
    fields = dict(re.findall(r'<input type=hidden name=(\w+) value="([^"]*)">', change.group(1)))
    assert "step" not in fields  # back to the choices, not straight on
    again = client.post("/setup", data={name: html.unescape(value) for name, value in fields.items()})
    assert again.status_code == 200 and 'id=owner-org value="org" checked>' in again.text
    assert re.search(r'id=org [^>]*value="acme"', again.text) and f'value="{HOOK}"' in again.text


@pytest.mark.parametrize(("address", "web", "api"), [
    ("https://ghe.example.com", "https://ghe.example.com", "https://ghe.example.com/api/v3"),
    (" https://GHE.example.com:8443/ ", "https://GHE.example.com:8443", "https://GHE.example.com:8443/api/v3"),
    ("https://ghe.example.com/api/v3", "https://ghe.example.com", "https://ghe.example.com/api/v3"),
    ("https://acme.ghe.com", "https://acme.ghe.com", "https://api.acme.ghe.com"),
    ("https://api.acme.ghe.com", "https://acme.ghe.com", "https://api.acme.ghe.com"),
])
def test_enterprise_addresses_people_paste(address: str, web: str, api: str) -> None:
    from bot.setup_choices import enterprise_urls

    assert enterprise_urls(address) == (web, api)


@pytest.mark.parametrize("ask", ["get", "post without a code", "post a wrong code", "post a code's prefix"])
def test_without_the_setup_code_there_is_no_create_form(tmp_path: Path, ask: str) -> None:
    client = setup_client(tmp_path)
    response = {"get": lambda: client.get("/setup", params={"code": CODE}),  # not from a link: it would be logged
                "post without a code": lambda: client.post("/setup", data={"webhook_url": "https://x.example/h"}),
                "post a wrong code": lambda: open_setup(client, code="console-code-1235"),
                "post a code's prefix": lambda: open_setup(client, code=CODE[:-1])}[ask]()
    assert response.status_code == 403 and "setup code" in response.text and "name=code" in response.text
    assert "settings/apps/new" not in response.text and "manifest" not in response.text
    assert "set-cookie" not in response.headers
    assert CODE not in response.text  # the page asks for it; it never tells it


def test_the_setup_code_is_printed_at_start_and_differs_per_start(tmp_path: Path) -> None:
    out = io.StringIO()
    logs.configure("INFO", stream=out)
    first = create_setup_app(settings(), tmp_path / ".env").state.setup.guard.code
    second = create_setup_app(settings(), tmp_path / ".env").state.setup.guard.code
    assert first != second and len(first) >= 16
    lines = [json.loads(line) for line in out.getvalue().splitlines() if "setup code" in line]
    assert [line["level"] for line in lines] == ["warning", "warning"]
    assert first in lines[0]["event"] and second in lines[1]["event"]
    configured = io.StringIO()
    logs.configure("INFO", stream=configured)
    create_setup_app(settings(app_id="7"), tmp_path / ".env")
    assert "setup code" not in configured.getvalue()  # a configured Mull has no setup to open


def test_the_state_is_bound_to_the_browser_that_opened_the_form(tmp_path: Path) -> None:
    app = create_setup_app(settings(), tmp_path / ".env", clock=Clock(), code=CODE)
    mine, stranger = TestClient(app), TestClient(app)
    opened = choose(mine)
    cookie = opened.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/setup" in cookie
    state = state_of(form(opened.text)[0])
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post(CONVERT).respond(201, json=CONVERSION)
        refused = stranger.get("/setup/callback", params={"code": "code123", "state": state})
        assert refused.status_code == 403 and "another browser" in refused.text and not route.called
        forged = TestClient(app, cookies={"mull_setup": "guessed"})
        assert forged.get("/setup/callback", params={"code": "code123", "state": state}).status_code == 403
        assert not route.called and not (tmp_path / ".env").exists()
        done = mine.get("/setup/callback", params={"code": "code123", "state": state})  # the owner still can
    assert done.status_code == 200 and route.call_count == 1


def test_every_visit_gets_its_own_state_and_html_is_escaped(tmp_path: Path) -> None:
    client = setup_client(tmp_path)
    first, second = (form(choose(client).text)[0] for _ in range(2))
    assert state_of(first) != state_of(second)
    for answers in ({"webhook_url": 'https://x.example/"><script>alert(1)</script>'},
                    {"owner": "org", "org": '"><script>alert(1)</script>'}):
        page = choose(client, **answers).text
        assert "<script>" not in page and "&lt;script&gt;" in page


def test_the_webhook_url_can_point_at_a_forwarder(tmp_path: Path) -> None:
    page = choose(setup_client(tmp_path), webhook_url="https://smee.io/AbC123").text
    _, manifest = form(page)
    assert manifest["hook_attributes"]["url"] == "https://smee.io/AbC123" and manifest["url"] == "https://smee.io"
    assert "callback_urls" not in manifest  # a relay is not Mull's address: nobody signs in through it
    assert manifest["redirect_url"] == "http://testserver/setup/callback"  # the browser comes back here


def test_a_loopback_address_is_not_offered_as_the_webhook_url(tmp_path: Path) -> None:
    app = create_setup_app(settings(port="8123"), tmp_path / ".env", code=CODE)
    page = open_setup(TestClient(app, base_url="http://127.0.0.1:8123")).text
    assert 'id=webhook_url placeholder=https://NAME.trycloudflare.com/webhooks/github value=""' in page
    assert "127.0.0.1:8123/webhooks/github\"" not in page and "settings/apps/new" not in page
    # the tunnel, explained where it is needed, for the port Mull listens on
    for command in ("cloudflared tunnel --url http://127.0.0.1:8123", "ngrok http http://127.0.0.1:8123",
                    "npx smee-client --url https://smee.io/CHANNEL --target http://127.0.0.1:8123/webhooks/github"):
        assert f"<code>{command}</code>" in page, command


def test_mulls_own_public_https_address_is_offered(tmp_path: Path) -> None:
    client = TestClient(create_setup_app(settings(), tmp_path / ".env", code=CODE), base_url="https://mull.example.org")
    assert 'value="https://mull.example.org/webhooks/github"' in open_setup(client).text


@pytest.mark.parametrize("query", [{}, {"code": "code123"}, {"code": "code123", "state": "made-up"}])
def test_callback_without_a_state_this_process_issued_is_refused(tmp_path: Path, query: dict) -> None:
    response = setup_client(tmp_path).get("/setup/callback", params=query)
    assert response.status_code == 400 and "/setup" in response.text
    assert not (tmp_path / ".env").exists()


def test_a_state_expires_after_an_hour(tmp_path: Path) -> None:
    clock = Clock()
    client = setup_client(tmp_path, clock)
    state = state_of(form(choose(client).text)[0])
    clock.now += 3601
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post(CONVERT).respond(201, json=CONVERSION)
        response = client.get("/setup/callback", params={"code": "code123", "state": state})
    assert response.status_code == 400 and "Start again at /setup" in response.text and not route.called


def test_callback_saves_the_app_in_env_and_closes_setup(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("# my settings\nMULL_LLM_MODEL=qwen2.5-coder\nMULL_WEBHOOK_SECRET=old\nOTHER_TOOL=1\n")
    env.chmod(0o644)
    out = io.StringIO()
    logs.configure("DEBUG", stream=out)
    client = setup_client(tmp_path)
    state = state_of(form(choose(client).text)[0])
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(CONVERT).respond(201, json=CONVERSION)
        response = client.get("/setup/callback", params={"code": "code123", "state": state})
    assert response.status_code == 200, response.text
    assert route.call_count == 1 and route.calls[0].request.url.path == "/app-manifests/code123/conversions"
    assert "https://github.com/apps/mull-acme/installations/new" in response.text and "make run" in response.text

    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    lines = env.read_text().splitlines()
    assert lines[:2] == ["# my settings", "MULL_LLM_MODEL=qwen2.5-coder"] and "OTHER_TOOL=1" in lines
    assert "MULL_WEBHOOK_SECRET=old" not in lines and len(lines) == 10
    # The OAuth credentials sign people in to session pages, which GitHub sends back to the webhook's host.
    assert f"MULL_GITHUB_CLIENT_ID={CONVERSION['client_id']}" in lines
    assert f"MULL_GITHUB_CLIENT_SECRET={CONVERSION['client_secret']}" in lines
    assert f"MULL_PUBLIC_URL={HOOK.removesuffix('/webhooks/github')}" in lines
    assert "MULL_GITHUB_URL" not in env.read_text()  # GitHub.com is the default
    loaded = load_settings({}, env_file=env)
    assert (loaded.app_id, loaded.app_slug, loaded.llm_model) == (4242, "mull-acme", "qwen2.5-coder")
    assert loaded.github_client_secret is not None and loaded.public_url == HOOK.removesuffix("/webhooks/github")
    assert loaded.app_private_key().strip() == PEM.strip()
    assert loaded.require_webhook_secret() == CONVERSION["webhook_secret"]

    assert client.get("/setup").status_code == 404 and open_setup(client).status_code == 404
    assert client.get("/setup/callback", params={"code": "code123", "state": state}).status_code == 404
    for secret in (PEM.splitlines()[1], CONVERSION["webhook_secret"], CONVERSION["client_secret"]):
        assert secret not in out.getvalue() and secret not in response.text
    assert "4242" in out.getvalue()


def test_a_new_env_file_is_private(tmp_path: Path) -> None:
    client = setup_client(tmp_path)
    state = state_of(form(choose(client).text)[0])
    with respx.mock() as mock:
        mock.post(CONVERT).respond(201, json=CONVERSION)
        assert client.get("/setup/callback", params={"code": "code123", "state": state}).status_code == 200
    assert stat.S_IMODE((tmp_path / ".env").stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [".env"]  # no temporary file left behind


def test_an_enterprise_app_is_traded_at_that_github_and_env_points_mull_there(tmp_path: Path) -> None:
    client = TestClient(create_setup_app(settings(), tmp_path / ".env", overridden=["MULL_GITHUB_URL"],
                                         clock=Clock(), code=CODE))
    state = state_of(form(choose(client, owner="org", org="acme", host="enterprise",
                                 enterprise_url="https://ghe.example.com").text)[0])
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post("https://ghe.example.com/api/v3/app-manifests/code123/conversions").respond(
            201, json={**CONVERSION, "html_url": "https://ghe.example.com/organizations/acme/settings/apps/mull-acme"})
        response = client.get("/setup/callback", params={"code": "code123", "state": state})
    assert response.status_code == 200 and route.call_count == 1
    assert "MULL_GITHUB_URL=https://ghe.example.com/api/v3" in (tmp_path / ".env").read_text().splitlines()
    loaded = load_settings({}, env_file=tmp_path / ".env")
    assert (loaded.github_url, loaded.app_id) == ("https://ghe.example.com/api/v3", 4242)
    assert "<code>MULL_GITHUB_URL</code> is also set in Mull's environment" in response.text


def test_choosing_github_com_replaces_another_githubs_url_in_env(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("MULL_GITHUB_URL=https://old-ghe.example.com/api/v3\n")
    client = TestClient(create_setup_app(load_settings({}, env_file=env), env, clock=Clock(), code=CODE))
    page = open_setup(client).text
    assert 'value="https://old-ghe.example.com"' in page  # the settings' GitHub is offered first
    state = state_of(form(choose(client).text)[0])
    with respx.mock(assert_all_called=True) as mock:
        mock.post(CONVERT).respond(201, json=CONVERSION)
        assert client.get("/setup/callback", params={"code": "code123", "state": state}).status_code == 200
    assert load_settings({}, env_file=env).github_url == "https://api.github.com"


@pytest.mark.parametrize(("answer", "says"), [
    (httpx.Response(422, json={"message": "Validation Failed"}), "HTTP 422"),
    (httpx.Response(404, json={"message": "Not Found"}), "HTTP 404"),
    (httpx.ConnectError("refused"), "could not reach https://api.github.com"),
])
def test_a_failed_exchange_says_what_to_do(tmp_path: Path, answer, says: str) -> None:
    client = setup_client(tmp_path)
    state = state_of(form(choose(client).text)[0])
    with respx.mock() as mock:
        mock.post(CONVERT).mock(side_effect=[answer])
        response = client.get("/setup/callback", params={"code": "code123", "state": state})
    assert response.status_code == 502 and says in response.text and "Start again at /setup" in response.text
    assert "https://github.com/settings/apps" in response.text  # where the half-made App is
    assert not (tmp_path / ".env").exists()
    assert open_setup(client).status_code == 200  # still unconfigured: the user can start again


def test_a_configured_mull_has_no_setup_pages(tmp_path: Path) -> None:
    client = setup_client(tmp_path, app_id="7")
    assert client.get("/setup").status_code == 404
    assert client.get("/setup/callback", params={"code": "c", "state": "s"}).status_code == 404
    receiver = TestClient(create_app("secret", "redis://127.0.0.1:1/0", app_slug="mull"))
    assert receiver.get("/setup").status_code == 404
    assert receiver.get("/setup/callback").status_code == 404


def wait_up(port: int, process: MullProcess) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return
        except httpx.HTTPError:
            assert process.alive() and time.monotonic() < deadline, process.log()
            time.sleep(0.1)


@pytest.mark.parametrize(("command", "says"), [("serve", "no worker, no Redis"), ("web", "no Redis")])
def test_mull_without_an_app_serves_only_the_setup_page(tmp_path: Path, command: str, says: str) -> None:
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MULL_PORT": str(port),
           "MULL_DATA_DIR": str(tmp_path / "data")}
    process = MullProcess([command], env, tmp_path / "mull.log", tmp_path).start()
    try:
        wait_up(port, process)
        [code] = re.findall(r"setup code: ([A-Za-z0-9_-]+)", process.log())
        assert httpx.get(f"http://127.0.0.1:{port}/setup").status_code == 403
        response = httpx.post(f"http://127.0.0.1:{port}/setup",
                              data={"code": code, "step": "choose", **ANSWERS})
        action, manifest = form(response.text)
        assert action.startswith("https://github.com/settings/apps/new?state=")
        assert manifest["redirect_url"] == f"http://127.0.0.1:{port}/setup/callback"
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 503
    finally:
        process.stop()
    assert process.process is not None and process.process.returncode == 0, process.log()
    setup_lines = [line for line in process.log().splitlines() if "setup mode" in line]
    assert len(setup_lines) == 1 and says in setup_lines[0] and "/setup" in setup_lines[0]
    assert "Starting worker" not in process.log()  # arq's first line
    assert not (tmp_path / "data" / "redis").exists()  # no embedded Redis


def test_mull_worker_without_an_app_still_stops_with_one_message(tmp_path: Path) -> None:
    result = subprocess.run([MULL, "worker"], env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                                                   "MULL_DATA_DIR": str(tmp_path / "data"), "MULL_SANDBOX": "false"},
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert [line.split()[1] for line in result.stderr.splitlines()[1:]] == [
        "MULL_APP_ID", "MULL_PRIVATE_KEY", "MULL_LLM_BASE_URL", "MULL_LLM_MODEL"]
    assert not (tmp_path / "data" / "redis").exists()  # it stops before starting the embedded Redis


def test_mull_web_with_a_secret_is_a_receiver_even_without_an_app_id(tmp_path: Path, redis_url: str) -> None:
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MULL_PORT": str(port), "MULL_WEBHOOK_SECRET": "s" * 20,
           "MULL_REDIS_URL": redis_url, "MULL_DATA_DIR": str(tmp_path / "data")}
    process = MullProcess(["web"], env, tmp_path / "web.log", tmp_path).start()
    try:
        wait_up(port, process)
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/setup").status_code == 404
    finally:
        process.stop()
    assert "setup mode" not in process.log()


def test_the_manifest_is_found_in_a_checkout_and_in_an_installed_mull(tmp_path: Path) -> None:
    from bot.setup import SOURCE_MANIFEST, find_manifest

    installed = tmp_path / "venv"
    installed.mkdir()
    (installed / "app-manifest.yml").write_text("name: mull\n")
    assert find_manifest(SOURCE_MANIFEST, str(installed)) == SOURCE_MANIFEST  # a checkout reads its own
    missing = tmp_path / "site-packages" / "app-manifest.yml"  # a wheel install has none beside bot/
    assert find_manifest(missing, str(installed)) == installed / "app-manifest.yml"
    assert find_manifest(missing, str(tmp_path / "empty")) == missing  # the page then says it cannot read it
