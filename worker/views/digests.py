"""Review digests: once per digest window, each person gets one message with what needs them.

The window comes from the repo's ``digest.schedule`` in its ``timezone`` (business days only by default).
A reviewer's digest lists the pull requests waiting for their review; the person who labeled an issue also
hears about items waiting for their answer, and is asked to split or close an issue snoozed three times.
It goes as one comment on the dashboard issue mentioning them, and to the repo's sinks. A Redis key per
reviewer, repo and window makes it once, however many workers run the cron.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from githubkit import GitHub

from bot import keys
from bot.jobs import RepoRef
from worker.backlog import store as backlogs
from worker.backlog.refresh import DEFAULT_SCHEDULE, ensure_dashboard
from worker.backlog.state import Item, ItemState
from worker.backlog.store import Backlog, known_refs
from worker.jobs.services import Services, services
from worker.views.digest import asks_to_split, digest_data, digest_markdown, digest_slack
from worker.views.digest_window import window_key, window_start
from worker.views.needs_you import count, html_base, to_sinks
from worker.views.sinks import SinkMessage

SENT_TTL = 8 * 24 * 3600  # longer than any window a schedule can have between business days


def recipients(items: list[Item]) -> dict[str, tuple[list[Item], list[Item], list[Item]]]:
    """Who gets a digest and what is in it: (awaiting their review, snoozed too often, waiting for them)."""
    found: dict[str, tuple[list[Item], list[Item], list[Item]]] = defaultdict(lambda: ([], [], []))
    for item in items:
        if item.state is ItemState.AWAITING:
            for login in item.reviewers:
                found[login][0].append(item)
        elif item.state is ItemState.SNOOZED and asks_to_split(item) and not item.extra.get("asked") \
                and item.labeled_by:
            found[item.labeled_by][1].append(item)
        elif item.state is ItemState.WAITING and item.labeled_by:
            found[item.labeled_by][2].append(item)
    return dict(found)


async def send_digests(ctx: dict[str, Any]) -> int:
    """The cron job: every repo with a backlog, every person due a digest in the current window."""
    svc = services(ctx)
    sent = 0
    for repo in await known_refs(svc.redis):
        backlog = backlogs.of(svc, repo.repo_id)
        due = await due_digests(backlog)
        if not due:
            continue
        gh = svc.github.installation(repo.installation_id, repo.repo_id)
        async with gh:
            sent += await send_repo_digests(svc, gh, repo, backlog, due)
    return sent


async def due_digests(backlog: Backlog) -> tuple[str, float, dict[str, Any]] | None:
    """(window key, window start, recipients) when the repo's current window has someone to tell."""
    notify = (await backlog.limits()).notify
    tz = str(notify.get("timezone") or "UTC")
    start = window_start(str(notify.get("schedule") or DEFAULT_SCHEDULE), tz,
                         datetime.fromtimestamp(backlog.clock(), UTC), bool(notify.get("business_days_only", True)))
    if start is None:
        return None
    people = recipients(await backlog.items())
    return (window_key(start), start.timestamp(), people) if people else None


async def send_repo_digests(svc: Services, gh: GitHub, ref: RepoRef, backlog: Backlog,
                            due: tuple[str, float, dict[str, Any]]) -> int:
    window, started, people = due
    repo = ref.full_name
    redis = backlog.redis
    notify = (await backlog.limits()).notify
    tz = str(notify.get("timezone") or "UTC")
    bot_login = (await svc.github.identity(gh)).login
    base = html_base(svc.settings, repo)
    now = backlog.clock()
    sent = 0
    for login, (awaiting, asks, waiting) in sorted(people.items()):
        if not await redis.set(keys.digest_sent(backlog.repo_id, login, window), 1, nx=True, ex=SENT_TTL):
            continue  # this window's digest for them went out already (another worker, or an earlier tick)
        dashboard = await ensure_dashboard(svc, gh, ref, backlog, bot_login)
        url = f"{base}/issues/{dashboard}" if dashboard else None
        body = digest_markdown(repo, login, awaiting, asks, waiting, now=now, tz=tz, dashboard_url=url)
        if not body:
            continue
        if dashboard is not None:
            await gh.rest.issues.async_create_comment(ref.owner, ref.name, dashboard, body=body)
            await count(redis, "github", "digest")
        await to_sinks(svc, backlog.repo_id, SinkMessage(
            kind="digest", id=f"{backlog.repo_id}:{login}:{window}", repo=repo,
            text=digest_slack(repo, login, awaiting, asks, waiting, now=now, tz=tz, dashboard_url=url,
                              html_base=base),
            data=digest_data(repo, login, awaiting, asks, waiting, now=now, tz=tz, dashboard_url=url,
                             html_base=base, window_start=started)))
        for item in asks:  # asked once; another three snoozes do not ask again
            current = await backlog.get(item.issue)
            if current is not None:
                await backlog.put(replace(current, extra={**current.extra, "asked": True}))
        svc.log.info("digest sent", repo=repo, reviewer=login, window=window, awaiting=len(awaiting),
                     asks=len(asks), waiting=len(waiting))
        sent += 1
    return sent
