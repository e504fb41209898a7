"""Digests and "needs you" events also go to optional sinks: a Slack incoming webhook and a signed JSON webhook.

GitHub stays the primary channel, so a sink that fails is retried once when the failure may pass (5xx, timeout,
no connection), then logged and skipped: never raised. Whoever edits ``.github/mull.yml`` picks the URLs, but
the HMAC secret lives in the deployment's environment, and a JSON sink without one is not sent unsigned. A
Slack webhook's path is its credential, so logs name a sink's host only, never its URL or secret.

Each send resolves the sink's host, refuses addresses that are not public and connects to the address it
checked (``worker/views/sink_address.py``); redirects are never followed, since a 302 would lead past that check.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import httpx

from bot.redaction import Redactor
from worker.github.outbound import redact_json
from worker.views.sink_address import PUBLIC_ONLY, Resolver, SinkPolicy, SinkRefused, pin

if TYPE_CHECKING:
    from worker.repo_config.schema import Sinks

Kind = Literal["digest", "needs_you"]
KINDS: frozenset[str] = frozenset({"digest", "needs_you"})
TIMEOUT = httpx.Timeout(10.0)
SIGNATURE_HEADER = "X-Mull-Signature-256"
SECRET_PREFIX = "MULL_SINK_SECRET_"  # the only variables a repository's sinks.json_secret_env may name


@dataclass(frozen=True)
class SinkTargets:
    """Where one repository's messages go. URLs and the secret stay out of ``repr``: they are credentials."""

    slack_url: str | None = field(default=None, repr=False)
    json_url: str | None = field(default=None, repr=False)
    json_secret: bytes | None = field(default=None, repr=False)
    json_secret_env: str | None = None
    policy: SinkPolicy = PUBLIC_ONLY

    @classmethod
    def from_config(cls, sinks: Sinks, environ: Mapping[str, str], policy: SinkPolicy = PUBLIC_ONLY) -> SinkTargets:
        """The ``sinks`` of a repo config, with the JSON secret read from ``environ[sinks.json_secret_env]``.

        Only ``MULL_SINK_SECRET_*`` variables are read (the schema allows no other name): a repository writer
        must not be able to HMAC with, say, ``GITHUB_TOKEN`` and send the result to a URL of their choosing.
        """
        name = sinks.json_secret_env
        value = environ.get(name, "") if name and name.startswith(SECRET_PREFIX) else ""
        return cls(slack_url=sinks.slack_webhook, json_url=sinks.json_webhook,
                   json_secret=value.encode() or None, json_secret_env=name, policy=policy)


@dataclass(frozen=True)
class SinkMessage:
    """One digest or event; ``id`` is stable across retries and re-sends so a receiver can dedupe on it."""

    kind: Kind
    id: str
    repo: str
    text: str  # Slack mrkdwn
    data: dict[str, Any] = field(default_factory=dict)  # JSON-serialisable details

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(sorted(KINDS))}, not {self.kind!r}")
        if not self.id or not self.id.isascii() or not self.id.isprintable():
            raise ValueError("id must be printable ASCII: it is sent as a header")


def redacted(message: SinkMessage, redactor: Redactor) -> SinkMessage:
    """``message`` with secret values and credential-shaped text removed from its text and data."""
    return replace(message, text=redactor.text(message.text), data=redact_json(message.data, redactor))


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-Mull-Signature-256`` value of ``body``: ``sha256=`` and the hex HMAC-SHA256 under ``secret``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, signature: str) -> bool:
    """Whether ``signature`` (an ``X-Mull-Signature-256`` header) signs ``body``; for receivers."""
    return hmac.compare_digest(sign(secret, body), signature)


def body_of(message: SinkMessage) -> bytes:
    """The JSON webhook's body: the exact bytes that are signed (values JSON cannot hold are sent as strings)."""
    return json.dumps({"type": message.kind, "id": message.id, "repo": message.repo, "text": message.text,
                       "data": message.data}, ensure_ascii=False, separators=(",", ":"), default=str).encode()


async def send(client: httpx.AsyncClient, targets: SinkTargets, message: SinkMessage, log: Any,
               resolve: Resolver | None = None, redactor: Redactor | None = None) -> list[str]:
    """Send ``message`` to every configured sink; the names of those that accepted it (``slack``, ``json``).

    The text and data are redacted first (``redactor`` knows the configured secrets), before the body is signed.
    """
    message = redacted(message, redactor or Redactor())
    posts: list[tuple[str, str, dict[str, Any]]] = []
    if targets.slack_url:
        posts.append(("slack", targets.slack_url, {"json": {"text": message.text}}))
    if targets.json_url and not targets.json_secret:
        log.warning("sink_secret_missing", sink="json", host=_host(targets.json_url), repo=message.repo,
                    env=targets.json_secret_env,
                    hint="set sinks.json_secret_env in .github/mull.yml to an environment variable of the Mull "
                         "deployment that holds the secret; JSON sinks are never sent unsigned")
    elif targets.json_url and targets.json_secret:
        body = body_of(message)
        headers = {"Content-Type": "application/json", "X-Mull-Event": message.kind,
                   "X-Mull-Delivery": message.id, SIGNATURE_HEADER: sign(targets.json_secret, body)}
        posts.append(("json", targets.json_url, {"content": body, "headers": headers}))
    accepted = await asyncio.gather(*(_post(client, name, url, message, log, kw, targets.policy, resolve)
                                      for name, url, kw in posts))
    return [name for (name, _, _), ok in zip(posts, accepted, strict=True) if ok]


async def _post(client: httpx.AsyncClient, sink: str, url: str, message: SinkMessage, log: Any,
                request: dict[str, Any], policy: SinkPolicy, resolve: Resolver | None) -> bool:
    """POST once, and once more after a 5xx, a timeout or no connection; False (and a warning) on failure.

    Every attempt resolves and checks the host afresh and posts to the address it checked; a refused
    address is not retried.
    """
    status: int | str = ""
    attempts = 0
    while attempts < 2:
        attempts += 1
        try:
            pinned = await pin(url, policy, resolve)
            response = await client.post(pinned.url, timeout=TIMEOUT, follow_redirects=False,
                                         extensions=pinned.extensions,
                                         **{**request, "headers": {**request.get("headers", {}), **pinned.headers}})
        except SinkRefused as refused:
            log.warning("sink_refused", sink=sink, host=_host(url), reason=str(refused), kind=message.kind,
                        id=message.id, repo=message.repo)
            return False
        except OSError as error:  # the name did not resolve
            status = type(error).__name__
            continue
        except httpx.TimeoutException:
            status = "timeout"
        except httpx.TransportError as error:
            status = type(error).__name__  # not str(error): it may quote the URL
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            status = type(error).__name__
            break
        else:
            if response.is_success:
                log.info("sink_sent", sink=sink, host=_host(url), kind=message.kind, id=message.id, repo=message.repo)
                return True
            status = response.status_code
            if status < 500:
                break
    log.warning("sink_failed", sink=sink, host=_host(url), status=status, attempts=attempts, kind=message.kind,
                id=message.id, repo=message.repo)
    return False


def _host(url: str) -> str:
    return urlsplit(url).hostname or "?"
