"""GitHub's App manifest flow, as the browser and Mull see it.

1. The browser POSTs a form with a ``manifest`` (JSON) field to ``/settings/apps/new?state=S`` (a personal account)
   or ``/organizations/ORG/settings/apps/new?state=S``. GitHub checks it and shows "Create GitHub App for OWNER",
   with the name editable; a manifest GitHub refuses (a localhost webhook URL, no homepage) gets an error page.
2. The button creates the App and redirects the browser to the manifest's ``redirect_url?code=C&state=S``.
3. Mull trades the code, once and within an hour, with ``POST /app-manifests/C/conversions`` (no auth) for the
   App's id, slug, private key and webhook secret.

The App created becomes the double's App: its key signs the JWTs the double accepts from then on, and its
webhook secret signs the deliveries, so a Mull restarted with the ``.env`` it wrote works against the double.
"""

from __future__ import annotations

import html
import ipaddress
import json
import re
import secrets
import time
from urllib.parse import parse_qs, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.routing import Route

from .github_http import ApiError, double_of
from .github_json import user_json
from .github_state import AppConfig, ManifestApp, iso, now

CODE_TTL = 3600.0
_LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}")


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(f"<!doctype html><html><head><title>{html.escape(title)} · GitHub</title></head><body>"
                        f"<h1>{html.escape(title)}</h1>{body}</body></html>", status)


def _loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def manifest_errors(manifest: object) -> list[str]:
    """What GitHub would say is wrong with a posted manifest (the checks Mull's setup page depends on)."""
    if not isinstance(manifest, dict):
        return ["Manifest must be a JSON object"]
    errors = []
    homepage = manifest.get("url")
    if not isinstance(homepage, str) or urlsplit(homepage).scheme not in ("http", "https"):
        errors.append("Url must be a valid URL")
    hook = manifest.get("hook_attributes") or {}
    if not isinstance(hook, dict):
        errors.append("Hook attributes must be an object")
    elif hook.get("active", True):
        hook_url = hook.get("url")
        parts = urlsplit(hook_url) if isinstance(hook_url, str) else None
        if not parts or parts.scheme not in ("http", "https") or not parts.hostname:
            errors.append("Hook url cannot be blank")
        elif _loopback(parts.hostname):
            errors.append("Hook url is not supported because it isn't reachable over the public Internet "
                          f"({parts.hostname})")
    redirect = manifest.get("redirect_url")
    if not isinstance(redirect, str) or urlsplit(redirect).scheme not in ("http", "https"):
        errors.append("Redirect url must be a valid URL")
    if not isinstance(manifest.get("default_permissions", {}), dict):
        errors.append("Default permissions must be an object")
    return errors


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form's fields, first value each (the browser posts GitHub's forms urlencoded)."""
    return {name: values[0] for name, values in parse_qs((await request.body()).decode()).items()}


async def new_app(request: Request) -> HTMLResponse:
    """Step 1: check the posted manifest and show the page whose button creates the App."""
    double = double_of(request)
    org = request.path_params.get("org")
    if org is not None and not _LOGIN.fullmatch(org):
        return _page("Page not found", "<p>This is not the web page you are looking for.</p>", 404)
    form = await _form(request)
    try:
        manifest = json.loads(form.get("manifest", ""))
    except ValueError:
        manifest = None
    errors = manifest_errors(manifest)
    if errors:
        items = "".join(f"<li>{html.escape(error)}</li>" for error in errors)
        return _page("Invalid GitHub App configuration", f"<ul id=errors>{items}</ul>", 422)
    assert isinstance(manifest, dict)
    owner = org or double.state.app.owner_login
    page_id = secrets.token_hex(8)
    with double.state.lock:
        double.state.manifest_apps[page_id] = ManifestApp(manifest, owner, org is not None,
                                                          request.query_params.get("state"), time.time(),
                                                          name=str(manifest.get("name") or ""))
    name, hook = html.escape(str(manifest.get("name", ""))), html.escape(manifest["hook_attributes"]["url"])
    return _page(f"Create GitHub App for {owner}",
                 f"<form method=post action=/settings/apps/manifest/{page_id}>"
                 f"<label>GitHub App name <input name=name id=app-name value=\"{name}\"></label>"
                 f"<p>Webhook URL: <code id=hook-url>{hook}</code></p>"
                 f"<button id=create-app>Create GitHub App for {html.escape(owner)}</button></form>")


async def create_app(request: Request) -> HTMLResponse | RedirectResponse:
    """Step 2: create the App and send the browser back to the manifest's redirect_url with a one-hour code."""
    double = double_of(request)
    form = await _form(request)
    with double.state.lock:
        flow = double.state.manifest_apps.get(request.path_params["page_id"])
        if flow is None or flow.code is not None:
            return _page("Page not found", "<p>This is not the web page you are looking for.</p>", 404)
        flow.name = form.get("name", flow.name).strip()
        if not flow.name:
            return _page("Invalid GitHub App configuration", "<ul id=errors><li>Name can't be blank</li></ul>", 422)
        flow.code, flow.created_at = secrets.token_hex(10), time.time()
    query = {"code": flow.code, **({"state": flow.state} if flow.state is not None else {})}
    return RedirectResponse(f"{flow.manifest['redirect_url']}?{urlencode(query)}", 302)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "app"


async def convert(request: Request) -> JSONResponse:
    """Step 3: the App's credentials, once per code and within the hour; the double takes the App as its own."""
    from .github import generate_app_keypair

    double = double_of(request)
    state = double.state
    with state.lock:
        flow = next((f for f in state.manifest_apps.values() if f.code == request.path_params["code"]), None)
        if flow is None or flow.traded or flow.created_at is None or time.time() - flow.created_at > CODE_TTL:
            raise ApiError(404, "Not Found")
        flow.traded = True
    pem, public = generate_app_keypair()
    secret = secrets.token_hex(20)
    with state.lock:
        state.app = AppConfig(state.app.app_id, _slug(flow.name), public, flow.owner, flow.name)
        state.bot = state.user(f"{state.app.slug}[bot]", type="Bot")
        owner = state.user(flow.owner, type="Organization" if flow.organisation else "User")
    double.hooks.secret = secret
    stamp = iso(now())
    manifest = flow.manifest
    return JSONResponse({
        "id": state.app.app_id, "slug": state.app.slug, "node_id": f"A_{state.app.app_id}",
        "owner": user_json(state, owner), "name": flow.name, "description": manifest.get("description", ""),
        "external_url": manifest["url"], "html_url": f"{state.base_url.removesuffix('/api/v3')}/apps/{state.app.slug}",
        "created_at": stamp, "updated_at": stamp, "permissions": manifest.get("default_permissions", {}),
        "events": manifest.get("default_events", []), "installations_count": 0,
        "client_id": f"Iv1.{secrets.token_hex(8)}", "client_secret": secrets.token_hex(20),
        "webhook_secret": secret, "pem": pem}, 201)


routes = [
    Route("/settings/apps/new", new_app, methods=["POST"]),
    Route("/organizations/{org}/settings/apps/new", new_app, methods=["POST"]),
    Route("/settings/apps/manifest/{page_id}", create_app, methods=["POST"]),
    Route("/app-manifests/{code}/conversions", convert, methods=["POST"]),
]
