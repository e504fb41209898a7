"""What every handler gets: the parsed delivery with its clients, and the questions they all ask."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from githubkit import GitHub
from githubkit.exception import RequestFailed

from bot.jobs import Delivery, RepoRef
from worker.github.app import BotIdentity
from worker.jobs.services import Services

TRIGGER_ROLES = frozenset({"admin", "maintain", "write", "triage"})


@dataclass(frozen=True)
class Event:
    """One delivery, parsed, with the installation client and the bot's identity."""

    delivery: Delivery
    payload: dict[str, Any]
    gh: GitHub
    bot: BotIdentity
    log: Any

    @property
    def repo(self) -> dict[str, Any]:
        return self.payload.get("repository") or {}

    @property
    def repo_name(self) -> str:
        return str(self.repo["full_name"])

    @property
    def repo_id(self) -> int:
        return int(self.repo["id"])

    @property
    def installation_id(self) -> int:
        return int(self.payload["installation"]["id"])

    @property
    def sender(self) -> str:
        return (self.payload.get("sender") or {}).get("login", "")

    @property
    def sender_is_bot(self) -> bool:
        return (self.payload.get("sender") or {}).get("type") == "Bot" or self.sender.endswith("[bot]")

    @property
    def ref(self) -> RepoRef:
        return RepoRef.of(self.installation_id, self.repo_id, self.repo_name)

    def owner_name(self) -> tuple[str, str]:
        return self.ref.owner, self.ref.name


async def permission(gh: GitHub, repo: RepoRef, login: str) -> str:
    """The sender's role on the repo (admin, maintain, write, triage, read or none)."""
    owner, name = repo.owner, repo.name
    try:
        data: Any = (await gh.rest.repos.async_get_collaborator_permission_level(owner, name, login)).json()
    except RequestFailed as exc:
        if exc.response.status_code == 404:
            return "none"
        raise
    return str(data.get("role_name") or data.get("permission") or "none")


async def once(svc: Services, key: str, ttl: int = 7 * 24 * 3600) -> bool:
    """True the first time ``key`` (``keys.once`` or ``keys.repo_once``) is claimed: side effects that must
    not repeat when a job reruns."""
    return bool(await svc.redis.set(key, 1, nx=True, ex=ttl))
