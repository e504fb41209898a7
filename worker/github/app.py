"""The App's view of GitHub: a JWT client, per-installation clients, tokens for git and the bot identity.

Installation tokens and the App's JWT come from githubkit's App auth and are cached in this process's memory
only (githubkit's memory cache strategy, one per ``GitHubApp``), never in Redis: Redis is shared and reachable
by more than the worker, and a token read there acts for every repository of an installation. Each worker
process mints its own installation token (one request per installation an hour); that is the price.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from githubkit import AppAuthStrategy, GitHub
from githubkit.exception import GitHubException, RateLimitExceeded, RequestFailed
from githubkit.typing import RetryOption
from redis.asyncio import Redis

from bot import keys
from bot.redaction import Redactor
from bot.tls_context import client_context
from worker.github.outbound import RedactingTransport
from worker.github.token_cache import SingleMintStrategy
from worker.ops.redis_reply import reply

MAX_INLINE_WAIT = timedelta(seconds=60)
MIN_WAIT = timedelta(seconds=1)


@dataclass(frozen=True)
class BotIdentity:
    """Who Mull is on GitHub: used to ignore its own events and to author its commits."""

    slug: str
    login: str  # <slug>[bot]
    user_id: int

    @property
    def email(self) -> str:
        return f"{self.user_id}+{self.login}@users.noreply.github.com"


class BoundedRetry:
    """Retry 5xx a few times with backoff and short rate-limit waits in process; longer waits go to the job.

    githubkit's default honours any ``retry-after`` in process, which can park a worker for an hour.
    """

    def __init__(self, server_retries: int = 3, backoff: float = 1.0) -> None:
        self.server_retries = server_retries
        self.backoff = backoff

    def __call__(self, exc: GitHubException, retry_count: int) -> RetryOption:
        if isinstance(exc, RateLimitExceeded):
            # githubkit sleeps 60 s for a zero wait ("retry_after or 60"): never hand it one.
            wait = max(exc.retry_after, MIN_WAIT)
            return RetryOption(retry_count < 1 and wait <= MAX_INLINE_WAIT, wait)
        if isinstance(exc, RequestFailed) and exc.response.status_code >= 500 and retry_count < self.server_retries:
            return RetryOption(True, timedelta(seconds=self.backoff * 2**retry_count))
        return RetryOption(False)


class GitHubApp:
    def __init__(self, app_id: int, private_key: str, base_url: str, redis: Redis,
                 retry: BoundedRetry | None = None, app_slug: str | None = None,
                 redactor: Redactor | None = None, transport: httpx.AsyncBaseTransport | None = None) -> None:
        """``redactor`` knows the configured secrets; every write to GitHub passes it (``worker.github.outbound``).
        ``transport``: how requests reach ``base_url`` (default: HTTP; in-process tests mount an ASGI app)."""
        self._redis = redis
        self._transport = transport
        self._slug = app_slug
        self._identity: BotIdentity | None = None
        # Not githubkit's module-wide default cache: tokens stay with the App (and process) that minted them.
        self._cache = SingleMintStrategy()  # one token per installation and scope, however many jobs ask
        self._app = GitHub(
            AppAuthStrategy(app_id, private_key),
            base_url=base_url.rstrip("/") + "/",
            auto_retry=retry or BoundedRetry(),
            http_cache=False,
            cache_strategy=self._cache,
            timeout=30,
            ssl_verify=client_context(),
            async_transport=RedactingTransport(redactor or Redactor(), transport),
        )

    @property
    def app(self) -> GitHub:
        """Authenticated as the App itself (JWT): /app routes."""
        return self._app

    def installation(self, installation_id: int, repo_id: int | None = None) -> GitHub:
        """A client for one installation; scoped to one repository when the job works on one."""
        auth = self._app.auth
        assert isinstance(auth, AppAuthStrategy)
        strategy = auth.as_installation(installation_id, repository_ids=[repo_id]) if repo_id else \
            auth.as_installation(installation_id)
        return self._app.with_auth(strategy)

    async def token(self, client: GitHub) -> str:
        """The installation token ``client`` authenticates with (cached; minted when missing or expiring)."""
        auth = client.auth.get_auth_flow(client)
        probe = httpx.Request("GET", str(client.config.base_url) + "installation/repositories")
        flow = auth.async_auth_flow(probe)
        request = await flow.__anext__()
        async with httpx.AsyncClient(timeout=30, transport=self._transport, verify=client_context()) as http:
            while request is not probe:
                response = await http.send(request)
                request = await flow.asend(response)
        await flow.aclose()
        header = request.headers["Authorization"]
        return header.split(" ", 1)[1]

    async def identity(self, client: GitHub) -> BotIdentity:
        """The App's bot user, from GET /app and GET /users/<slug>[bot]; cached in Redis for all processes.

        ``client`` is an installation client: only /app routes accept the App's JWT.
        """
        if self._identity:
            return self._identity
        cached = await reply(self._redis.hgetall(keys.APP_BOT))
        if cached:
            self._identity = BotIdentity(cached[b"slug"].decode(), cached[b"login"].decode(), int(cached[b"id"]))
            return self._identity
        slug = self._slug
        if not slug:
            app_info: Any = (await self._app.rest.apps.async_get_authenticated()).json()
            slug = app_info["slug"]
        login = f"{slug}[bot]"
        user = (await client.rest.users.async_get_by_username(login)).json()
        self._identity = BotIdentity(slug, login, int(user["id"]))
        await reply(self._redis.hset(keys.APP_BOT, mapping={"slug": slug, "login": login, "id": user["id"]}))
        await self._redis.set(keys.APP_SLUG, slug)
        return self._identity
