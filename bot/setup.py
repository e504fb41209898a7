"""First run without a GitHub App: ``GET /setup`` registers one from app-manifest.yml (GitHub's manifest flow).

GitHub shows the App's key and webhook secret once, in exchange for a one-hour code sent back to
``/setup/callback``; Mull writes them to ``.env`` so a restart comes up configured. The routes only work while
Mull has no App: once one is configured they answer 404, so nobody who can reach Mull can swap in their own.
"""

from __future__ import annotations

import asyncio
import html
import ipaddress
import json
import os
import re
import secrets
import sys
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from bot import logs
from bot.settings import MullSettings

SOURCE_MANIFEST = Path(__file__).resolve().parent.parent / "app-manifest.yml"


def find_manifest(beside: Path = SOURCE_MANIFEST, prefix: str = sys.prefix) -> Path:
    """app-manifest.yml beside the source tree (a checkout), else where ``pip install`` put it: the
    environment's root (a container image, a wheel install)."""
    installed = Path(prefix) / "app-manifest.yml"
    return beside if beside.exists() or not installed.exists() else installed


MANIFEST_PATH = find_manifest()
STATE_TTL = 3600.0  # as long as GitHub's manifest codes live
MAX_STATES = 1000  # /setup is unauthenticated: bound what reloading it can pile up
WRITTEN = ("MULL_APP_ID", "MULL_APP_SLUG", "MULL_PRIVATE_KEY", "MULL_WEBHOOK_SECRET")
_CODE = re.compile(r"[A-Za-z0-9_-]{1,200}")
_PLAIN = re.compile(r"[A-Za-z0-9+/=_.:\\ -]*")  # written to .env unquoted, as README tells people to
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"}
_STYLE = "body{font:16px/1.5 system-ui,sans-serif;max-width:42rem;margin:3rem auto;padding:0 1rem}code{background:#eee}"


class ExchangeError(Exception):
    """GitHub did not hand over the App's credentials; the message says what to do."""


def github_web_url(api_url: str) -> str:
    """Where browsers go for the REST base URL: api.github.com -> github.com, https://HOST/api/v3 -> https://HOST."""
    api_url = api_url.rstrip("/")
    parts = urlsplit(api_url)
    if parts.netloc == "api.github.com" or (parts.netloc.startswith("api.") and parts.netloc.endswith(".ghe.com")):
        return f"{parts.scheme}://{parts.netloc[len('api.'):]}"
    if parts.path.endswith("/api/v3"):
        return api_url[: -len("/api/v3")]
    return f"{parts.scheme}://{parts.netloc}"


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


def _valid_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and len(url) <= 2000 and url.isprintable() \
        and " " not in url


async def exchange(github_url: str, code: str) -> dict[str, str]:
    """Trade the code for the App's credentials, as the ``.env`` lines Mull reads."""
    url = f"{github_url}/app-manifests/{code}/conversions"
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(url, headers={"Accept": "application/vnd.github+json",
                                                       "X-GitHub-Api-Version": "2022-11-28"})
    except httpx.HTTPError as exc:
        raise ExchangeError(f"Mull could not reach {github_url} ({type(exc).__name__}). Check the network and "
                            "MULL_GITHUB_URL, then start again.") from None
    if response.status_code in (404, 422):
        raise ExchangeError(f"GitHub refused the code (HTTP {response.status_code}): a code works once and "
                            "expires after an hour. Start again.")
    if response.status_code not in (200, 201):
        raise ExchangeError(f"GitHub answered HTTP {response.status_code}. Try again in a minute.")
    try:
        data = response.json()
        app = {"MULL_APP_ID": str(int(data["id"])), "MULL_APP_SLUG": str(data["slug"]),
               "MULL_PRIVATE_KEY": str(data["pem"]).strip().replace("\r\n", "\n").replace("\n", "\\n"),
               "MULL_WEBHOOK_SECRET": str(data["webhook_secret"])}
        page_url = str(data.get("html_url") or "")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ExchangeError("GitHub's answer lacks the App's id, key or webhook secret.") from None
    if data["webhook_secret"] is None or not all(_PLAIN.fullmatch(app[name]) for name in WRITTEN):
        raise ExchangeError("GitHub's answer holds no webhook secret, or values Mull cannot write to .env.")
    app["html_url"] = page_url if _valid_url(page_url) else f"{github_web_url(github_url)}/apps/{app['MULL_APP_SLUG']}"
    return app


def write_env(path: Path, values: Mapping[str, str]) -> None:
    """Set ``values`` in the .env file, keeping its other lines; the file holds a key, so only its owner reads it."""
    lines = path.read_text().splitlines() if path.exists() else []
    pending = dict(values)
    out = []
    for line in lines:
        name = line.strip().removeprefix("export ").split("=", 1)[0].strip()
        if name in values:
            if name in pending:
                out.append(f"{name}={pending.pop(name)}")
            continue
        out.append(line)
    out += [f"{name}={value}" for name, value in pending.items()]
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write("\n".join(out) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    """A whole page; ``body`` is HTML whose variable parts the caller escaped."""
    return HTMLResponse(f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)} - Mull"
                        f"</title><style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body>"
                        "</html>", status_code=status, headers=_HEADERS)


def _link(url: str, text: str | None = None) -> str:
    return f"<a href=\"{html.escape(url)}\">{html.escape(text or url)}</a>"


def _again(text: str) -> str:
    return f"<p>{html.escape(text)}</p><p><a href=/setup>Start again at /setup</a>.</p>"


class SetupFlow:
    """The two pages of the manifest flow and the states that tie GitHub's answer to a page Mull served."""

    def __init__(self, settings: MullSettings, env_file: Path, overridden: Collection[str] = (),
                 manifest_path: Path = MANIFEST_PATH, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.env_file = env_file.absolute()
        self.overridden = [name for name in WRITTEN if name in overridden]
        self.manifest_path = manifest_path
        self.clock = clock
        self.configured = settings.app_id is not None
        self.states: dict[str, float] = {}
        self.lock = asyncio.Lock()
        self.log = logs.get("mull.setup")

    def _issue_state(self) -> str:
        now = self.clock()
        self.states = {state: expiry for state, expiry in self.states.items() if expiry > now}
        while len(self.states) >= MAX_STATES:
            del self.states[next(iter(self.states))]
        state = secrets.token_urlsafe(32)
        self.states[state] = now + STATE_TTL
        return state

    def _take_state(self, state: str) -> bool:
        expiry = self.states.pop(state, None)
        return expiry is not None and expiry > self.clock()

    async def setup_page(self, request: Request) -> Response:
        if self.configured:
            return page("Not found", "<p>Mull already has a GitHub App.</p>", 404)
        try:
            template = yaml.safe_load(self.manifest_path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            return page("No app manifest", f"<p>Mull cannot read {html.escape(str(self.manifest_path))} "
                        f"({html.escape(type(exc).__name__)}): run Mull from its source checkout, or create the App "
                        "by hand (README, 'Create the GitHub App').</p>", 500)
        base = str(request.base_url).rstrip("/")
        asked = request.query_params.get("webhook_url", "")
        webhook_url = asked if _valid_url(asked) else f"{base}/webhooks/github"
        web = github_web_url(self.settings.github_url)
        owner = f"the organisation {self.settings.github_org}" if self.settings.github_org else "your account"
        body = (f"<p>Mull has no GitHub App yet. The button below registers one for {html.escape(owner)} on "
                f"{html.escape(web)}, with the permissions and events of app-manifest.yml. GitHub then sends you back "
                f"here, and Mull saves the App's id, key and webhook secret in <code>{html.escape(str(self.env_file))}"
                "</code>.</p>"
                "<form method=get action=/setup><p><label>Webhook URL: where GitHub sends events. It must be reachable "
                "from GitHub: Mull's public address, a tunnel's, or a smee.io channel.<br>"
                f"<input name=webhook_url size=60 value=\"{html.escape(webhook_url)}\"></label> "
                "<button>Use this URL</button></p></form>")
        if asked and asked != webhook_url:
            body += "<p><strong>That is not an http(s) URL; using the default.</strong></p>"
        if unreachable(webhook_url):
            body += ("<p><strong>GitHub cannot reach this webhook URL and refuses it.</strong> Start a tunnel or a "
                     "smee.io channel (README, 'Create the GitHub App') and enter its URL above.</p>")
            return page("Create Mull's GitHub App", body)
        manifest = json.dumps(build_manifest(template, base, webhook_url))
        action = new_app_url(web, self.settings.github_org, self._issue_state())
        body += (f"<form method=post action=\"{html.escape(action)}\">"
                 f"<input type=hidden name=manifest value=\"{html.escape(manifest)}\">"
                 f"<button>Create the GitHub App on {html.escape(urlsplit(web).netloc)}</button></form>")
        return page("Create Mull's GitHub App", body)

    async def callback(self, request: Request) -> Response:
        if self.configured:
            return page("Not found", "<p>Mull already has a GitHub App.</p>", 404)
        if not self._take_state(request.query_params.get("state", "")):
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
                     manifest_path: Path = MANIFEST_PATH, clock: Callable[[], float] = time.monotonic) -> Starlette:
    """The web app of setup mode: the setup pages and health checks; no Redis, deliveries refused."""
    flow = SetupFlow(settings, env_file, overridden, manifest_path, clock)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def not_ready(request: Request) -> Response:
        return JSONResponse({"status": "not ready", "setup": "no GitHub App configured: open /setup"}, 503)

    async def webhook(request: Request) -> Response:
        return JSONResponse({"error": "Mull has no GitHub App configured yet: finish /setup, then restart Mull"}, 503)

    app = Starlette(routes=[
        Route("/setup", flow.setup_page), Route("/setup/callback", flow.callback), Route("/healthz", healthz),
        Route("/readyz", not_ready), Route("/webhooks/github", webhook, methods=["POST"]),
    ])
    app.state.setup = flow
    return app
