"""/setup in a real browser: headless Chromium (Debian's package), driven by playwright, through the whole
manifest flow of a `mull serve` without an App against the GitHub double, served over https as a GitHub Enterprise
Server: the setup code, account or organisation and host, a refused answer, the manifest posted to the double, the
double's redirect back with a code, and the `.env` written.

Skipped only when no Chromium binary exists (CI installs Debian's `chromium`); playwright's own browser download
is never used.
"""

from __future__ import annotations

import re
import ssl
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from doubles.github import GitHubDouble
from doubles.mull_process import MullProcess, free_port
from doubles.tls import self_signed
from playwright.sync_api import Browser, Page

from bot.settings import load_settings

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

HOOK = "https://hooks.example.com/webhooks/github"


@pytest.fixture
def ghes(tmp_path: Path, app_keypair: tuple[str, str]) -> Iterator[tuple[GitHubDouble, str]]:
    """The GitHub double over https at 127.0.0.1, as an Enterprise Server; and the certificate to trust."""
    cert, key = self_signed(tmp_path / "tls")
    with GitHubDouble(tmp_path / "github", app_keypair[1], tls=(cert, key)) as double:
        yield double, cert


def start_setup_mode(tmp_path: Path, cert: str) -> tuple[MullProcess, int, str, Path]:
    """`mull serve` with no App: the setup page only. Returns the process, its port, the setup code and its cwd."""
    cwd = tmp_path / "mull"
    cwd.mkdir()
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MULL_PORT": str(port),
           "MULL_DATA_DIR": str(tmp_path / "data"), "SSL_CERT_FILE": cert}
    process = MullProcess(["serve"], env, tmp_path / "mull.log", cwd).start()
    deadline = time.monotonic() + 30
    while not (codes := re.findall(r"setup code: ([A-Za-z0-9_-]+)", process.log())) or not _answers(port):
        assert process.alive() and time.monotonic() < deadline, process.log()
        time.sleep(0.1)
    return process, port, codes[0], cwd


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def submit(page: Page, button: str) -> int:
    """Click a form's button and wait for the page it leads to (after redirects); its HTTP status."""
    with page.expect_navigation() as navigation:
        page.click(button)
    response = navigation.value
    assert response is not None
    return response.status


def problem(page: Page, field: str) -> str:
    return page.inner_text(f"#{field}-problem")


def test_setup_in_a_browser_creates_an_organisations_app_on_an_enterprise_server(
        tmp_path: Path, browser: Browser, ghes: tuple[GitHubDouble, str]) -> None:
    double, cert = ghes
    host = double.url.removeprefix("https://")
    process, port, code, cwd = start_setup_mode(tmp_path, cert)
    context = browser.new_context(ignore_https_errors=True)  # the double's self-signed certificate
    page = context.new_page()
    try:
        # The first page asks for the code from the console; a wrong one is refused.
        response = page.goto(f"http://127.0.0.1:{port}/setup")
        assert response is not None and response.status == 403
        page.fill("#code", "not-the-code")
        assert submit(page, "button") == 403 and "That is not the setup code" in page.content()
        page.fill("#code", code)
        assert submit(page, "button") == 200

        # The choices: Mull's own address is loopback, so no webhook URL is offered; the tunnel is explained.
        assert page.is_checked("#owner-user") and page.is_checked("#host-github-com")
        assert page.input_value("#webhook_url") == ""
        assert f"cloudflared tunnel --url http://127.0.0.1:{port}" in page.inner_text("body")

        # Bad answers: each says what is wrong, and nothing goes to GitHub.
        page.check("#owner-org")
        page.fill("#org", "acme corp")
        page.check("#host-enterprise")
        page.fill("#enterprise_url", f"http://{host}")
        page.fill("#webhook_url", f"http://127.0.0.1:{port}/webhooks/github")
        assert submit(page, "#continue") == 400
        assert "'acme corp' is not an organisation name" in problem(page, "org")
        assert "with https://" in problem(page, "enterprise_url")
        assert "should start with https://" in problem(page, "webhook_url")
        assert page.input_value("#org") == "acme corp"  # kept, to correct
        page.fill("#webhook_url", f"https://127.0.0.1:{port}/webhooks/github")
        page.fill("#org", "acme")
        page.fill("#enterprise_url", f"https://{host}")
        assert submit(page, "#continue") == 400
        assert "GitHub refuses webhook URLs on 127.0.0.1" in problem(page, "webhook_url")
        assert page.locator(".problem").count() == 1
        assert not double.state.manifest_apps

        # Good answers: the page says where the App goes and what .env will hold.
        page.fill("#webhook_url", HOOK)
        assert submit(page, "#continue") == 200
        summary = page.inner_text("body")
        assert "the organisation acme" in summary and f"MULL_GITHUB_URL=https://{host}/api/v3" in summary

        # GitHub (the double) checks the manifest, shows the App, creates it and sends the browser back.
        assert submit(page, f"text=Create the GitHub App on {host}") == 200
        assert page.url.startswith(f"https://{host}/organizations/acme/settings/apps/new?state=")
        assert page.inner_text("h1") == "Create GitHub App for acme"
        assert page.inner_text("#hook-url") == HOOK
        page.fill("#app-name", "Mull Acme")
        assert submit(page, "#create-app") == 200
        assert page.url.startswith(f"http://127.0.0.1:{port}/setup/callback?code=")
        assert page.inner_text("h1") == "Mull's GitHub App is ready", page.content()
        assert page.get_attribute("text=Install the App", "href") == f"https://{host}/apps/mull-acme/installations/new"

        response = page.goto(f"http://127.0.0.1:{port}/setup")
        assert response is not None and response.status == 404  # setup is closed
    finally:
        context.close()
        process.stop()

    # The .env: the App's credentials and the Enterprise Server's API, readable by its owner only.
    env_file = cwd / ".env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    lines = env_file.read_text().splitlines()
    assert sorted(line.split("=", 1)[0] for line in lines) == [
        "MULL_APP_ID", "MULL_APP_SLUG", "MULL_GITHUB_CLIENT_ID", "MULL_GITHUB_CLIENT_SECRET", "MULL_GITHUB_URL",
        "MULL_PRIVATE_KEY", "MULL_PUBLIC_URL", "MULL_WEBHOOK_SECRET"]
    settings = load_settings({}, env_file=env_file)
    # Signing in to session pages: the App's OAuth credentials, and Mull's address GitHub sends people back to.
    assert settings.public_url == HOOK.removesuffix("/webhooks/github") and settings.github_client_id
    assert settings.github_client_secret is not None
    assert (settings.app_id, settings.app_slug) == (double.app_id, "mull-acme")
    assert settings.github_url == f"https://{host}/api/v3"
    assert settings.require_webhook_secret() == double.webhook_secret
    conversions = double.requests("POST")
    assert [r.path for r in conversions if "/app-manifests/" in r.path] == [
        f"/app-manifests/{next(iter(double.state.manifest_apps.values())).code}/conversions"]

    # The key written is the App's: the double takes a JWT signed with it.
    now = int(time.time())
    token = jwt.encode({"iat": now - 30, "exp": now + 300, "iss": str(settings.app_id)},
                       settings.app_private_key(), algorithm="RS256")
    app = httpx.get(f"{settings.github_url}/app", headers={"Authorization": f"Bearer {token}"},
                    verify=ssl.create_default_context(cafile=cert))
    assert app.status_code == 200 and app.json()["slug"] == "mull-acme" and app.json()["owner"]["login"] == "acme"

    log = process.log()
    assert "github app created" in log
    for secret in (settings.require_webhook_secret(), settings.app_private_key().splitlines()[1]):
        assert secret not in log


def test_the_double_refuses_what_github_refuses(ghes: tuple[GitHubDouble, str]) -> None:
    """The double is no yes-machine: a localhost webhook URL is refused, and a code trades once."""
    import json

    double, cert = ghes
    manifest = {"name": "Mull", "url": "https://x.example", "redirect_url": "http://127.0.0.1:1/setup/callback",
                "hook_attributes": {"url": "https://localhost/webhooks/github"}}
    with httpx.Client(verify=ssl.create_default_context(cafile=cert), base_url=double.url) as client:
        refused = client.post("/settings/apps/new", data={"manifest": json.dumps(manifest)})
        assert refused.status_code == 422
        assert "isn&#x27;t reachable over the public Internet (localhost)" in refused.text
        manifest["hook_attributes"] = {"url": HOOK}
        page = client.post("/organizations/acme/settings/apps/new", params={"state": "s1"},
                           data={"manifest": json.dumps(manifest)})
        action = re.search(r"action=(/settings/apps/manifest/\w+)", page.text)
        assert page.status_code == 200 and action and "Create GitHub App for acme" in page.text
        back = client.post(action.group(1), data={"name": "Mull"})
        assert back.status_code == 302 and back.headers["location"].startswith("http://127.0.0.1:1/setup/callback?")
        code = re.search(r"code=(\w+)&state=s1$", back.headers["location"])
        assert code
        first = client.post(f"/api/v3/app-manifests/{code.group(1)}/conversions")
        assert first.status_code == 201 and {"id", "slug", "pem", "webhook_secret"} <= set(first.json())
        assert client.post(f"/api/v3/app-manifests/{code.group(1)}/conversions").status_code == 404
        assert client.post("/api/v3/app-manifests/made-up/conversions").status_code == 404
