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
import ipaddress
import json
import re
import sys
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from bot import logs
from bot.app_credentials import WRITTEN, ExchangeError, exchange, github_web_url, valid_url, write_env
from bot.settings import MullSettings
from bot.setup_guard import COOKIE, SetupGuard, new_browser, new_code

SOURCE_MANIFEST = Path(__file__).resolve().parent.parent / "app-manifest.yml"


def find_manifest(beside: Path = SOURCE_MANIFEST, prefix: str = sys.prefix) -> Path:
    """app-manifest.yml beside the source tree (a checkout), else where ``pip install`` put it: the
    environment's root (a container image, a wheel install)."""
    installed = Path(prefix) / "app-manifest.yml"
    return beside if beside.exists() or not installed.exists() else installed


MANIFEST_PATH = find_manifest()
MAX_FORM = 16 * 1024  # the setup form holds a code and a URL
_CODE = re.compile(r"[A-Za-z0-9_-]{1,200}")
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"}
_STYLE = "body{font:16px/1.5 system-ui,sans-serif;max-width:42rem;margin:3rem auto;padding:0 1rem}code{background:#eee}"


def new_app_url(web_url: str, org: str | None, state: str) -> str:
    path = f"/organizations/{quote(org, safe='')}/settings/apps/new" if org else "/settings/apps/new"
    return f"{web_url}{path}?{urlencode({'state': state})}"


def build_manifest(template: Mapping[str, Any], base_url: str, webhook_url: str) -> dict[str, Any]:
    """app-manifest.yml with this deployment's addresses; the homepage is the public side of the webhook URL."""
    suffix = "/webhooks/github"
    parts = urlsplit(webhook_url)
    homepage = webhook_url[: -len(suffix)] if webhook_url.endswith(suffix) else f"{parts.scheme}://{parts.netloc}"
    return {**template, "url": homepage, "hook_attributes": {**template.get("hook_attributes", {}), "url": webhook_url},
            "redirect_url": f"{base_url}/setup/callback"}


def unreachable(url: str) -> bool:
    """GitHub refuses webhook URLs on loopback addresses, so don't let anyone try."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    """A whole page; ``body`` is HTML whose variable parts the caller escaped."""
    return HTMLResponse(f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)} - Mull"
                        f"</title><style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body>"
                        "</html>", status_code=status, headers=_HEADERS)


def _link(url: str, text: str | None = None) -> str:
    return f"<a href=\"{html.escape(url)}\">{html.escape(text or url)}</a>"


def _code_form(webhook_url: str) -> str:
    return ("<p>Mull printed a setup code on its console when it started (a line with <code>setup code</code>). "
            "Enter it to create the GitHub App: only whoever runs Mull can.</p><form method=post action=/setup>"
            "<p><label>Setup code: <input name=code autocomplete=off autofocus></label>"
            f"<input type=hidden name=webhook_url value=\"{html.escape(webhook_url)}\"> <button>Continue</button></p>"
            "</form>")


async def _form(request: Request) -> dict[str, str]:
    """A posted form's fields (urlencoded: the setup pages' only kind), first value each; {} when too big."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            return {}
    fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=20)
    return {name: values[0] for name, values in fields.items()}


def _again(text: str) -> str:
    return f"<p>{html.escape(text)}</p><p><a href=/setup>Start again at /setup</a>.</p>"


class SetupFlow:
    """The two pages of the manifest flow and the states that tie GitHub's answer to a page Mull served."""

    def __init__(self, settings: MullSettings, env_file: Path, overridden: Collection[str] = (),
                 manifest_path: Path = MANIFEST_PATH, clock: Callable[[], float] = time.monotonic,
                 code: str | None = None) -> None:
        self.settings = settings
        self.env_file = env_file.absolute()
        self.overridden = [name for name in WRITTEN if name in overridden]
        self.manifest_path = manifest_path
        self.configured = settings.app_id is not None
        self.guard = SetupGuard(code or new_code(), clock)
        self.lock = asyncio.Lock()
        self.log = logs.get("mull.setup")

    async def setup_page(self, request: Request) -> Response:
        """GET asks for the setup code; POST with the right code shows the create form (403 without it)."""
        if self.configured:
            return page("Not found", "<p>Mull already has a GitHub App.</p>", 404)
        fields = await _form(request) if request.method == "POST" else {}
        asked = fields.get("webhook_url", "")
        if not self.guard.code_ok(fields.get("code", "")):
            wrong = "<p><strong>That is not the setup code.</strong></p>" if "code" in fields else ""
            return page("Enter the setup code", wrong + _code_form(asked), 403)
        try:
            template = yaml.safe_load(self.manifest_path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            return page("No app manifest", f"<p>Mull cannot read {html.escape(str(self.manifest_path))} "
                        f"({html.escape(type(exc).__name__)}): run Mull from its source checkout, or create the App "
                        "by hand (README, 'Create the GitHub App').</p>", 500)
        base = str(request.base_url).rstrip("/")
        webhook_url = asked if valid_url(asked) else f"{base}/webhooks/github"
        web = github_web_url(self.settings.github_url)
        owner = f"the organisation {self.settings.github_org}" if self.settings.github_org else "your account"
        body = (f"<p>Mull has no GitHub App yet. The button below registers one for {html.escape(owner)} on "
                f"{html.escape(web)}, with the permissions and events of app-manifest.yml. GitHub then sends you back "
                f"here, and Mull saves the App's id, key and webhook secret in <code>{html.escape(str(self.env_file))}"
                "</code>.</p>"
                "<form method=post action=/setup><p><label>Webhook URL: where GitHub sends events. It must be "
                "reachable from GitHub: Mull's public address, a tunnel's, or a smee.io channel.<br>"
                f"<input type=hidden name=code value=\"{html.escape(self.guard.code)}\">"
                f"<input name=webhook_url size=60 value=\"{html.escape(webhook_url)}\"></label> "
                "<button>Use this URL</button></p></form>")
        if asked and asked != webhook_url:
            body += "<p><strong>That is not an http(s) URL; using the default.</strong></p>"
        if unreachable(webhook_url):
            body += ("<p><strong>GitHub cannot reach this webhook URL and refuses it.</strong> Start a tunnel or a "
                     "smee.io channel (README, 'Create the GitHub App') and enter its URL above.</p>")
            return page("Create Mull's GitHub App", body)
        manifest = json.dumps(build_manifest(template, base, webhook_url))
        browser = request.cookies.get(COOKIE) or new_browser()
        action = new_app_url(web, self.settings.github_org, self.guard.issue_state(browser))
        body += (f"<form method=post action=\"{html.escape(action)}\">"
                 f"<input type=hidden name=manifest value=\"{html.escape(manifest)}\">"
                 f"<button>Create the GitHub App on {html.escape(urlsplit(web).netloc)}</button></form>")
        response = page("Create Mull's GitHub App", body)
        response.headers.append("Set-Cookie", SetupGuard.cookie(browser, request.url.scheme == "https"))
        return response

    async def callback(self, request: Request) -> Response:
        if self.configured:
            return page("Not found", "<p>Mull already has a GitHub App.</p>", 404)
        refused = self.guard.take_state(request.query_params.get("state", ""), request.cookies.get(COOKIE, ""))
        if refused == "other browser":
            self.log.warning("setup callback from another browser refused",
                             hint="finish /setup in the browser that opened it")
            return page("Wrong browser", _again("This setup was started in another browser: finish it there, or "
                                                "start again here."), 403)
        if refused:
            return page("Start again", _again("This link is unknown, already used or over an hour old."), 400)
        code = request.query_params.get("code", "")
        if not _CODE.fullmatch(code):
            return page("Start again", _again("GitHub's code is missing from this link."), 400)
        async with self.lock:
            if self.configured:
                return page("Not found", "<p>Mull already has a GitHub App.</p>", 404)
            try:
                app = await exchange(self.settings.github_url, code)
            except ExchangeError as exc:
                self.log.warning("github app manifest exchange failed", reason=str(exc))
                return page("GitHub did not hand over the App", self._orphan(str(exc)), 502)
            try:
                write_env(self.env_file, {name: app[name] for name in WRITTEN})
            except OSError as exc:
                self.log.error("cannot write .env", path=str(self.env_file), error=exc.strerror)
                return page("Mull could not save the App", f"<p>Writing {html.escape(str(self.env_file))} failed "
                            f"({html.escape(str(exc.strerror))}). The App exists at {_link(app['html_url'])}: "
                            "generate a private key there and set the variables by hand (README, 'Create the "
                            "GitHub App').</p>", 500)
            self.configured = True
        self.log.info("github app created", app_id=app["MULL_APP_ID"], slug=app["MULL_APP_SLUG"],
                      env_file=str(self.env_file))
        return page("Mull's GitHub App is ready", self._done(app))

    def _orphan(self, reason: str) -> str:
        """GitHub creates the App before it sends the browser back, so a failed exchange leaves one behind."""
        org = self.settings.github_org
        apps = github_web_url(self.settings.github_url) + (f"/organizations/{quote(org, safe='')}" if org else "") \
            + "/settings/apps"
        return (f"<p>{html.escape(reason)}</p><p>GitHub created the App before sending you here, but Mull does not "
                f"have its key. In {_link(apps, 'your GitHub Apps')}, delete it (its settings, Advanced) and start "
                "again, or finish it by hand: generate a private key and set a webhook secret there, then set the "
                "variables (README, 'Create the GitHub App').</p><p><a href=/setup>Start again at /setup</a>.</p>")

    def _done(self, app: Mapping[str, str]) -> str:
        install = app["html_url"].rstrip("/") + "/installations/new"
        names = ", ".join(f"<code>{name}</code>" for name in WRITTEN)
        shadow = "".join(f"<li><code>{name}</code> is also set in Mull's environment, which wins over .env: unset it."
                         "</li>" for name in self.overridden)
        return (f"<p>GitHub created {_link(app['html_url'], app['MULL_APP_SLUG'])} "
                f"and Mull wrote {names} to <code>{html.escape(str(self.env_file))}</code>.</p><ol>"
                f"<li>{_link(install, 'Install the App')} on the repositories Mull should work on.</li>{shadow}"
                "<li>Restart Mull (stop <code>make run</code> with Ctrl-C and run it again) so it starts with the App."
                f"</li><li>Put the label <code>{html.escape(self.settings.label)}</code> on an issue.</li></ol>")


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
 Route("/healthz", healthz),
        Route("/readyz", not_ready), Route("/webhooks/github", webhook, methods=["POST"]),
    ])
    app.state.setup = flow
    return app
