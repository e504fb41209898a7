"""First run without a GitHub App: ``GET /setup`` registers one from app-manifest.yml (GitHub's manifest flow).

GitHub shows the App's key and webhook secret once, in exchange for a one-hour code sent back to
``/setup/callback``; Mull writes them to ``.env`` so a restart comes up configured. The routes only work while
Mull has no App: once one is configured they answer 404, so nobody who can reach Mull can swap in their own.
Until then, the setup code printed on the console and a cookie bound to the flow's state keep strangers out
(``bot/setup_guard.py``).
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import sys
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot import logs
from bot import setup_choices as choices
from bot import setup_pages as pages
from bot.app_credentials import OAUTH, ExchangeError, exchange, github_web_url, write_env
from bot.app_credentials import WRITTEN as CREDENTIALS
from bot.settings import MullSettings
from bot.setup_choices import GITHUB_COM_API, Choice
from bot.setup_guard import COOKIE, SetupGuard, StateRefused, new_browser, new_code
from bot.setup_pages import page

__all__ = ["WRITTEN", "create_setup_app", "github_web_url"]

SOURCE_MANIFEST = Path(__file__).resolve().parent.parent / "app-manifest.yml"


def find_manifest(beside: Path = SOURCE_MANIFEST, prefix: str = sys.prefix) -> Path:
    """app-manifest.yml beside the source tree (a checkout), else where ``pip install`` put it: the
    environment's root (a container image, a wheel install)."""
    installed = Path(prefix) / "app-manifest.yml"
    return beside if beside.exists() or not installed.exists() else installed


MANIFEST_PATH = find_manifest()
MAX_FORM = 16 * 1024  # the setup form holds a code, a few answers and URLs
_CODE = re.compile(r"[A-Za-z0-9_-]{1,200}")
# What /setup may write to .env: the App's credentials, which GitHub it lives on, and Mull's public address.
WRITTEN = (*CREDENTIALS, *OAUTH, "MULL_GITHUB_URL", "MULL_PUBLIC_URL")
WEBHOOK_PATH = "/webhooks/github"


def public_url(webhook_url: str) -> str | None:
    """Mull's own public address, when the webhook URL reaches Mull directly (a tunnel, a proxy); a relay such
    as smee.io is not Mull's address."""
    return webhook_url[: -len(WEBHOOK_PATH)] if webhook_url.endswith(WEBHOOK_PATH) else None


def build_manifest(template: Mapping[str, Any], base_url: str, webhook_url: str) -> dict[str, Any]:
    """app-manifest.yml with this deployment's addresses; the homepage is the public side of the webhook URL."""
    parts = urlsplit(webhook_url)
    homepage = public_url(webhook_url) or f"{parts.scheme}://{parts.netloc}"
    manifest = {**template, "url": homepage,
                "hook_attributes": {**template.get("hook_attributes", {}), "url": webhook_url},
                "redirect_url": f"{base_url}/setup/callback"}
    if public_url(webhook_url):  # where GitHub sends people back after they sign in to a session page
        manifest["callback_urls"] = [f"{homepage}/login/github/callback"]
    return manifest


async def _form(request: Request) -> dict[str, str]:
    """A posted form's fields (urlencoded: the setup pages' only kind), first value each; {} when too big."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            return {}
    fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=20)
    return {name: values[0] for name, values in fields.items()}


class SetupFlow:
    """The pages of the manifest flow and the states that tie GitHub's answer to a page Mull served.

    POST /setup with the code shows the choices (owner, GitHub, webhook URL); with valid choices, the form
    that posts the manifest to GitHub; with invalid ones, the choices again with what to fix (400).
    """

    def __init__(self, settings: MullSettings, env_file: Path, overridden: Collection[str] = (),
                 manifest_path: Path = MANIFEST_PATH, clock: Callable[[], float] = time.monotonic,
                 code: str | None = None) -> None:
        self.settings = settings
        self.env_file = env_file.absolute()
        self.overridden = set(overridden)
        self.manifest_path = manifest_path
        self.configured = settings.app_id is not None
        self.guard = SetupGuard(code or new_code(), clock)
        self.lock = asyncio.Lock()
        self.log = logs.get("mull.setup")

    def _tunnel(self, request: Request) -> str:
        """Tunnel commands aimed at where Mull listens (a wildcard bind is reached on loopback)."""
        host = self.settings.host if self.settings.host not in ("", "0.0.0.0", "::") else "127.0.0.1"  # noqa: S104
        host = f"[{host}]" if ":" in host else host
        return pages.tunnel_help(host, self.settings.port or request.url.port or 80)

    async def setup_page(self, request: Request) -> Response:
        """GET asks for the setup code; POST with it shows the choices, then the create form (403 without it)."""
        if self.configured:
            return page("Not found", "<p>Mull already has a GitHub App.</p>", 404)
        fields = await _form(request) if request.method == "POST" else {}
        if not self.guard.code_ok(fields.get("code", "")):
            wrong = "<p><strong>That is not the setup code.</strong></p>" if "code" in fields else ""
            return page("Enter the setup code", wrong + pages.code_form(), 403)
        base = str(request.base_url).rstrip("/")
        if fields.get("step") != "choose":
            values = {name: fields.get(name, default) for name, default in
                      choices.defaults(self.settings.github_url, self.settings.github_org, base).items()}
            return page("Create Mull's GitHub App", pages.choices_form(self.guard.code, values, {},
                                                                        self._tunnel(request)))
        values = {name: fields.get(name, "").strip() for name in choices.FIELDS}
        choice, problems = choices.parse(values)
        if choice is None:
            return page("Create Mull's GitHub App", pages.choices_form(self.guard.code, values, problems,
                                                                        self._tunnel(request)), 400)
        try:
            template = yaml.safe_load(self.manifest_path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            return page("No app manifest", f"<p>Mull cannot read {html.escape(str(self.manifest_path))} "
                        f"({html.escape(type(exc).__name__)}): run Mull from its source checkout, or create the App "
                        "by hand (README, 'Create the GitHub App').</p>", 500)
        manifest = json.dumps(build_manifest(template, base, choice.webhook_url))
        browser = request.cookies.get(COOKIE) or new_browser()
        action = choice.new_app_url(self.guard.issue_state(browser, choice))
        response = page("Create Mull's GitHub App", pages.create_form(self.guard.code, choice, action, manifest,
                                                                      str(self.env_file), values))
        response.headers.append("Set-Cookie", SetupGuard.cookie(browser, request.url.scheme == "https"))
        return response

    async def callback(self, request: Request) -> Response:
        if self.configured:
            return page("Not found", "<p>Mull already has a GitHub App.</p>", 404)
        try:
            choice = self.guard.take_state(request.query_params.get("state", ""), request.cookies.get(COOKIE, ""))
        except StateRefused as refused:
            if str(refused) == "other browser":
                self.log.warning("setup callback from another browser refused",
                                 hint="finish /setup in the browser that opened it")
                return page("Wrong browser", pages.again("This setup was started in another browser: finish it "
                                                         "there, or start again here."), 403)
            return page("Start again", pages.again("This link is unknown, already used or over an hour old."), 400)
        code = request.query_params.get("code", "")
        if not _CODE.fullmatch(code):
            return page("Start again", pages.again("GitHub's code is missing from this link."), 400)
        async with self.lock:
            if self.configured:
                return page("Not found", "<p>Mull already has a GitHub App.</p>", 404)
            try:
                app = await exchange(choice.api_url, code)
            except ExchangeError as exc:
                self.log.warning("github app manifest exchange failed", reason=str(exc), github=choice.api_url)
                return page("GitHub did not hand over the App", self._orphan(str(exc), choice), 502)
            values = {name: app[name] for name in (*CREDENTIALS, *OAUTH) if name in app}
            if address := public_url(choice.webhook_url):
                values["MULL_PUBLIC_URL"] = address
            if choice.enterprise or self.settings.github_url != GITHUB_COM_API:  # replace another GitHub's URL too
                values["MULL_GITHUB_URL"] = choice.api_url
            try:
                write_env(self.env_file, values)
            except OSError as exc:
                self.log.error("cannot write .env", path=str(self.env_file), error=exc.strerror)
                return page("Mull could not save the App", f"<p>Writing {html.escape(str(self.env_file))} failed "
                            f"({html.escape(str(exc.strerror))}). The App exists at {pages.link(app['html_url'])}: "
                            "generate a private key there and set the variables by hand (README, 'Create the "
                            "GitHub App').</p>", 500)
            self.configured = True
        self.log.info("github app created", app_id=app["MULL_APP_ID"], slug=app["MULL_APP_SLUG"],
                      github=choice.api_url, env_file=str(self.env_file))
        return page("Mull's GitHub App is ready", self._done(app, list(values)))

    def _orphan(self, reason: str, choice: Choice) -> str:
        """GitHub creates the App before it sends the browser back, so a failed exchange leaves one behind."""
        return (f"<p>{html.escape(reason)}</p><p>GitHub created the App before sending you here, but Mull does not "
                f"have its key. In {pages.link(choice.apps_url(), 'your GitHub Apps')}, delete it (its settings, "
                "Advanced) and start again, or finish it by hand: generate a private key and set a webhook secret "
                "there, then set the variables (README, 'Create the GitHub App').</p>"
                "<p><a href=/setup>Start again at /setup</a>.</p>")

    def _done(self, app: Mapping[str, str], written: list[str]) -> str:
        install = app["html_url"].rstrip("/") + "/installations/new"
        names = ", ".join(f"<code>{name}</code>" for name in written)
        shadow = "".join(f"<li><code>{name}</code> is also set in Mull's environment, which wins over .env: unset it."
                         "</li>" for name in written if name in self.overridden)
        return (f"<p>GitHub created {pages.link(app['html_url'], app['MULL_APP_SLUG'])} "
                f"and Mull wrote {names} to <code>{html.escape(str(self.env_file))}</code>.</p><ol>"
                f"<li>{pages.link(install, 'Install the App')} on the repositories Mull should work on.</li>{shadow}"
                "<li>Restart Mull (stop <code>make run</code> with Ctrl-C and run it again) so it starts with the App."
                " Keep the tunnel running: GitHub sends every event through the webhook URL.</li>"
                f"<li>Put the label <code>{html.escape(self.settings.label)}</code> on an issue.</li></ol>")


def create_setup_app(settings: MullSettings, env_file: Path = Path(".env"), overridden: Collection[str] = (),
                     manifest_path: Path = MANIFEST_PATH, clock: Callable[[], float] = time.monotonic,
                     code: str | None = None) -> Starlette:
    """The web app of setup mode: the setup pages and health checks; no Redis, deliveries refused.

    Prints this start's setup code (``code``, else a random one) on the console: the operator types it on /setup.
    """
    flow = SetupFlow(settings, env_file, overridden, manifest_path, clock, code)
    if not flow.configured:
        flow.log.warning(f"setup code: {flow.guard.code} (enter it on /setup; it changes at every start)",
                         setup_code=flow.guard.code)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def not_ready(request: Request) -> Response:
        return JSONResponse({"status": "not ready", "setup": "no GitHub App configured: open /setup"}, 503)

    async def webhook(request: Request) -> Response:
        return JSONResponse({"error": "Mull has no GitHub App configured yet: finish /setup, then restart Mull"}, 503)

    app = Starlette(routes=[
        Route("/setup", flow.setup_page, methods=["GET", "POST"]), Route("/setup/callback", flow.callback),
        Route("/healthz", healthz), Route("/readyz", not_ready), Route("/webhooks/github", webhook, methods=["POST"]),
    ])
    app.state.setup = flow
    return app
