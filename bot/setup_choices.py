"""What the operator chose on ``/setup``: who owns the App, which GitHub, and where GitHub sends events.

GitHub's manifest flow differs only in where the form goes (a personal account's or an organisation's "new App"
page, on GitHub.com or a GitHub Enterprise Server) and where the code is traded (that GitHub's REST API). Each
field is checked here so the page can say what is wrong and how to fix it, before GitHub refuses it with a page
that says less, or accepts a webhook URL it can never deliver to.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

from bot.app_credentials import github_web_url, valid_url

GITHUB_COM_API = "https://api.github.com"
GITHUB_COM_WEB = "https://github.com"
# GitHub logins: letters, digits and single inner hyphens, at most 39 characters.
_ORG = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}")
# Names that resolve only inside a network (RFC 6761, RFC 6762, RFC 8375 and common practice).
_PRIVATE_SUFFIXES = ("localhost", "local", "internal", "lan", "home.arpa", "localdomain", "test", "invalid")
FIELDS = ("owner", "org", "host", "enterprise_url", "webhook_url")


@dataclass(frozen=True)
class Choice:
    """A checked set of answers: enough to send the manifest to GitHub and to trade its code afterwards."""

    org: str | None  # None: the account of whoever is signed in to GitHub
    web_url: str  # https://github.com or https://HOST
    api_url: str  # https://api.github.com or https://HOST/api/v3
    webhook_url: str

    @property
    def enterprise(self) -> bool:
        return self.api_url != GITHUB_COM_API

    @property
    def owner_text(self) -> str:
        return f"the organisation {self.org}" if self.org else "your personal account"

    def new_app_url(self, state: str) -> str:
        """Where GitHub's manifest flow starts: the account's or the organisation's "new GitHub App" page."""
        return f"{self.apps_url()}/new?{urlencode({'state': state})}"

    def apps_url(self) -> str:
        """The owner's list of GitHub Apps (where a half-made App can be deleted)."""
        owner = f"/organizations/{quote(self.org, safe='')}" if self.org else ""
        return f"{self.web_url}{owner}/settings/apps"


def enterprise_urls(address: str) -> tuple[str, str]:
    """(web URL, REST URL) of a GitHub Enterprise address, or ValueError saying how to write it.

    Takes what people copy: the server's address (https://HOST), its API URL (https://HOST/api/v3), or a
    GHE.com data-residency address (https://SUBDOMAIN.ghe.com, whose API is https://api.SUBDOMAIN.ghe.com).
    """
    address = address.strip().rstrip("/")
    if not address:
        raise ValueError("Enter your GitHub Enterprise Server's address, e.g. https://github.example.com, or choose "
                         "GitHub.com.")
    parts = urlsplit(address if "://" in address else f"//{address}")
    if parts.scheme != "https":
        raise ValueError(f"Write the GitHub Enterprise Server address with https:// (e.g. https://"
                         f"{parts.netloc or 'github.example.com'}): GitHub Enterprise serves its pages and API over "
                         "HTTPS only.")
    if not valid_url(address) or parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError("The GitHub Enterprise Server address should be just https://HOST (the address you open "
                         "GitHub in), e.g. https://github.example.com.")
    host = (parts.hostname or "").lower()
    if host in ("github.com", "api.github.com", "www.github.com"):
        raise ValueError("That is GitHub.com: choose GitHub.com instead of GitHub Enterprise Server.")
    if parts.path.lower() not in ("", "/api/v3"):
        raise ValueError(f"The GitHub Enterprise Server address should end at the host: use https://{parts.netloc} "
                         f"(without {parts.path}).")
    web = f"https://{parts.netloc}"
    if host.endswith(".ghe.com"):
        web = github_web_url(web)  # an api. address pasted: the pages are on the host without it
        return web, f"https://api.{urlsplit(web).netloc}"
    return web, f"{web}/api/v3"


def org_problem(name: str) -> str | None:
    """Why ``name`` cannot be a GitHub organisation, or None."""
    if not name:
        return "Enter the organisation's name (as in github.com/ORG), or choose your personal account."
    if not _ORG.fullmatch(name):
        return (f"'{name}' is not an organisation name: GitHub's are letters, digits and single hyphens, at most 39 "
                "characters, not starting or ending with a hyphen. Use the name from the organisation's address, "
                "e.g. acme-corp for github.com/acme-corp.")
    return None


def _private_host(host: str) -> bool:
    """A name or address GitHub.com cannot reach: loopback, private, link-local, or a name only a LAN resolves."""
    try:
        return not ipaddress.ip_address(host).is_global
    except ValueError:
        pass
    return "." not in host or host.endswith(tuple(f".{suffix}" for suffix in _PRIVATE_SUFFIXES))


def _loopback_host(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def webhook_problem(url: str, enterprise: bool) -> str | None:
    """Why GitHub would refuse ``url`` as the App's webhook URL, or could never deliver to it; None when fine.

    GitHub refuses localhost and loopback addresses outright. GitHub.com also cannot reach a private network;
    a GitHub Enterprise Server usually sits in one, so there only loopback is refused.
    """
    tunnel = "Start a tunnel to Mull (below) and enter the https address it prints."
    if not url:
        return "Enter the webhook URL: the https address where GitHub sends events. " + tunnel
    parts = urlsplit(url)
    if not valid_url(url) or parts.username or parts.password:
        return "The webhook URL should be a plain https://HOST/PATH address without spaces or a password."
    if parts.scheme != "https":
        return (f"The webhook URL should start with https:// (not {parts.scheme}://): events carry your repositories' "
                "contents, and tunnels give an https address.")
    host = (parts.hostname or "").lower()
    if _loopback_host(host):
        return f"GitHub refuses webhook URLs on {host}: it cannot reach this machine that way. " + tunnel
    if not enterprise and _private_host(host):
        return f"GitHub.com cannot reach {host}: it is a private or local address. " + tunnel
    return None


def defaults(github_url: str, github_org: str | None, base_url: str) -> dict[str, str]:
    """The form's first values: Mull's settings, and a webhook URL at Mull's own address when GitHub can reach it."""
    enterprise = github_url.rstrip("/") != GITHUB_COM_API
    hook = f"{base_url.rstrip('/')}/webhooks/github"
    return {"owner": "org" if github_org else "user", "org": github_org or "",
            "host": "enterprise" if enterprise else "github.com",
            "enterprise_url": github_web_url(github_url) if enterprise else "",
            "webhook_url": "" if webhook_problem(hook, enterprise) else hook}


def parse(fields: Mapping[str, str]) -> tuple[Choice | None, dict[str, str]]:
    """The choice the posted form makes, or None and what is wrong with it, by field name."""
    values = {name: fields.get(name, "").strip() for name in FIELDS}
    problems: dict[str, str] = {}
    if values["owner"] not in ("user", "org"):
        problems["owner"] = "Choose who owns the App: your personal account or an organisation."
    org = values["org"] if values["owner"] == "org" else None
    if org is not None and (problem := org_problem(org)):
        problems["org"] = problem
    web, api = GITHUB_COM_WEB, GITHUB_COM_API
    if values["host"] == "enterprise":
        try:
            web, api = enterprise_urls(values["enterprise_url"])
        except ValueError as exc:
            problems["enterprise_url"] = str(exc)
    elif values["host"] != "github.com":
        problems["host"] = "Choose GitHub.com or GitHub Enterprise Server."
    if problem := webhook_problem(values["webhook_url"], values["host"] == "enterprise"):
        problems["webhook_url"] = problem
    if problems:
        return None, problems
    return Choice(org, web, api, values["webhook_url"]), {}
