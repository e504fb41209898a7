"""The App's credentials: traded for the manifest flow's code at GitHub, then written to ``.env``.

GitHub shows an App's key and webhook secret once, in exchange for a one-hour code; Mull writes them where
``load_settings`` reads them so a restart comes up configured, and keeps the file readable by its owner only.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import httpx

WRITTEN = ("MULL_APP_ID", "MULL_APP_SLUG", "MULL_PRIVATE_KEY", "MULL_WEBHOOK_SECRET")
# Written when GitHub's answer has them: the App's OAuth credentials, for signing in to session pages.
OAUTH = ("MULL_GITHUB_CLIENT_ID", "MULL_GITHUB_CLIENT_SECRET")
_PLAIN = re.compile(r"[A-Za-z0-9+/=_.:\\ -]*")  # written to .env unquoted, as README tells people to


def github_web_url(api_url: str) -> str:
    """Where browsers go for the REST base URL: api.github.com -> github.com, https://HOST/api/v3 -> https://HOST."""
    api_url = api_url.rstrip("/")
    parts = urlsplit(api_url)
    if parts.netloc == "api.github.com" or (parts.netloc.startswith("api.") and parts.netloc.endswith(".ghe.com")):
        return f"{parts.scheme}://{parts.netloc[len('api.'):]}"
    if parts.path.endswith("/api/v3"):
        return api_url[: -len("/api/v3")]
    return f"{parts.scheme}://{parts.netloc}"


def valid_url(url: str) -> bool:
    """An http(s) URL that can go into a page and .env as it is."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and len(url) <= 2000 and url.isprintable() \
        and " " not in url


class ExchangeError(Exception):
    """GitHub did not hand over the App's credentials; the message says what to do."""


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
    app["html_url"] = page_url if valid_url(page_url) else f"{github_web_url(github_url)}/apps/{app['MULL_APP_SLUG']}"
    oauth = {"MULL_GITHUB_CLIENT_ID": str(data.get("client_id") or ""),
             "MULL_GITHUB_CLIENT_SECRET": str(data.get("client_secret") or "")}
    if all(value and _PLAIN.fullmatch(value) for value in oauth.values()):
        app.update(oauth)
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


