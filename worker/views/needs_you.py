"""The few things that cannot wait for the digest: the agent asked a question, a budget ran out, a run failed.

Everything else Mull has to say goes into the dashboard (no notification) and the reviewers' digests. A
"needs you" event pings the person who asked for the run on the issue (the plan's question already does,
as it mentions the author) and goes to the repo's sinks, once per item, kind and run. ``detail`` may quote
an agent or a model, so it is defused for each channel (``worker.views.defuse``).
"""

from __future__ import annotations

from typing import Any

import httpx
from githubkit import GitHub
from pydantic import ValidationError

from bot import keys
from bot.jobs import RepoRef
from bot.settings import MullSettings
from worker.backlog import store as backlogs
from worker.backlog.state import Item
from worker.jobs.services import Services
from worker.repo_config import Sinks
from worker.views import defuse
from worker.views.digest import needs_you as needs_you_text
from worker.views.sink_address import SinkPolicy
from worker.views.sinks import SinkMessage, SinkTargets, send
from worker.webhooks.events import once

ONCE_TTL = 30 * 24 * 3600


def html_base(settings: MullSettings, repo: str) -> str:
    """The repository's web address: github.com, or the GHES host behind ``MULL_GITHUB_URL``."""
    api = settings.github_url.rstrip("/")
    if api == "https://api.github.com":
        return f"https://github.com/{repo}"
    return f"{api.removesuffix('/api/v3')}/{repo}"


async def count(redis: Any, channel: str, kind: str, n: int = 1) -> None:
    """Notifications people got from Mull, by channel and kind (``mull_notifications_total``)."""
    await redis.hincrby(keys.STATS, f"notifications|{channel}|{kind}", n)


async def sink_targets(svc: Services, repo_id: int) -> SinkTargets:
    """The repo's sinks as last stored; none when they no longer pass the schema (a name from before a rule)."""
    sinks = (await backlogs.of(svc, repo_id).limits()).notify.get("sinks") or {}
    try:
        config = Sinks(**sinks)
    except ValidationError as exc:
        svc.log.warning("sinks_invalid", repo_id=repo_id, error=str(exc).splitlines()[0],
                        hint="fix `sinks` in the repository's .github/mull.yml")
        return SinkTargets()
    return SinkTargets.from_config(config, svc.environ or {}, SinkPolicy(svc.settings.sink_allowed))


async def to_sinks(svc: Services, repo_id: int, message: SinkMessage) -> list[str]:
    targets = await sink_targets(svc, repo_id)
    if not (targets.slack_url or targets.json_url):
        return []
    client: httpx.AsyncClient = svc.http
    accepted = await send(client, targets, message, svc.log, redactor=svc.redactor)
    for sink in accepted:
        await count(svc.redis, sink, message.kind)
    return accepted


async def needs_you(svc: Services, gh: GitHub, repo: RepoRef, item: Item, kind: str, detail: str, *,
                    mention: bool = True) -> bool:
    """Tell the person behind the issue now; False when this event was already told."""
    repo_id = repo.repo_id
    # labeled_at tells runs apart: a retry after a failure is a new run with its own news.
    if not await once(svc, keys.repo_once(repo_id, f"needs-you:{item.issue}:{kind}:{item.labeled_at}:{detail[:80]}"),
                      ttl=ONCE_TTL):
        return False
    if mention and item.labeled_by and not item.labeled_by.endswith("[bot]"):
        await gh.rest.issues.async_create_comment(repo.owner, repo.name, item.issue, body=(
            f"@{item.labeled_by} Mull needs you here: {defuse.markdown(detail)}"))
        await count(svc.redis, "github", f"needs_you_{kind}")
    text, data = needs_you_text(repo.full_name, item, kind, html_base(svc.settings, repo.full_name))
    await to_sinks(svc, repo_id, SinkMessage(kind="needs_you", id=f"{repo_id}:{item.issue}:{kind}:{item.since}",
                                             repo=repo.full_name, text=f"{text}\n{defuse.slack(detail)}",
                                             data={**data, "detail": detail}))
    return True
