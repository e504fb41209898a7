"""The ``refresh_backlog`` job: show the backlog where people look, without notifying anyone.

Each status comment gets its line about where it stands ("2 ahead", held as a draft, review requested),
and the repo's "Mull review queue" issue is created on first need and then edited in place. Edits do not
notify; Mull never posts "updated" comments. A burst of changes makes one refresh (one job id per repo), and
the job goes round again if the backlog changed while it ran.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from githubkit import GitHub
from githubkit.exception import RequestFailed

from bot import keys
from bot.jobs import RefreshRequest, RepoRef
from worker.backlog import budget
from worker.backlog import store as backlogs
from worker.backlog.reviewer_cap import HELD_BY, at_cap
from worker.backlog.state import Item, ItemState
from worker.backlog.store import Backlog, Limits
from worker.github.pages import every
from worker.jobs.lease_lock import ISSUE_LOCK_WAIT_S, lease_lock
from worker.jobs.services import Services, services
from worker.views import markers
from worker.views.dashboard import KIND as DASHBOARD
from worker.views.dashboard import TITLE, held_positions, local_time, positions, render_dashboard
from worker.views.digest_window import next_fire
from worker.views.needs_you import html_base
from worker.views.status_comment import StatusComment

ROUNDS = 5
EXACT_PLACES = 10  # further back, a status says "more than 10 ahead": each start would otherwise edit every one
DEFAULT_SCHEDULE = "0 9 * * 1-5"


async def refresh_backlog(ctx: dict[str, Any], request: RefreshRequest) -> str:
    svc = services(ctx)
    gh = svc.github.installation(request.installation_id, request.repo_id)
    backlog = backlogs.of(svc, request.repo_id)
    async with gh:
        bot_login = (await svc.github.identity(gh)).login
        for _ in range(ROUNDS):
            version = await backlog.version()
            items = await backlog.items()
            limits = await backlog.limits()
            await show_positions(svc, gh, request, backlog, items, limits, bot_login)
            await show_dashboard(svc, gh, request.ref, backlog, items, limits, bot_login)
            await backlog.redis.hset(backlog.key("meta"), "refreshed", version)
            if await backlog.version() == version:
                return "refreshed"
    return "refreshed; still changing"


def queue_line(item: Item, ahead: dict[int, int], held_ahead: dict[int, int], limits: Limits, tz: str,
               now: float, budget_spent: str = "") -> str:
    """The status comment's line about where the issue stands in the repo's queue; ``budget_spent``: the line of
    queued runs while the installation's budget is spent."""
    if item.state is ItemState.QUEUED and item.issue in ahead and budget_spent:
        return budget_spent
    if item.state is ItemState.QUEUED and item.issue in ahead:
        n = ahead[item.issue]
        return ("**Queue:** next in line." if n == 0 else f"**Queue:** {_places(n)} ahead of it") + (
            f" (up to {limits.max_in_flight} agent runs at a time in this repository)." if n else "")
    if item.state is ItemState.HELD:
        n = held_ahead.get(item.issue, 0)
        place = "next in line." if n == 0 else f"{_places(n)} ahead of it."
        busy = item.extra.get(HELD_BY)
        if busy:  # this repository has room; the people who would review it do not
            return (f"**Review queue:** finished, but {at_cap(busy, limits.max_awaiting_review)}; so #{item.pr} "
                    f"stays a draft until one of those is reviewed: {place}")
        return (f"**Review queue:** finished, but {limits.max_awaiting_review} Mull pull requests already await "
                f"review in this repository, so #{item.pr} stays a draft: {place}")
    if item.state is ItemState.AWAITING:
        who = ", ".join(f"`{r}`" for r in item.reviewers)
        return f"**Review queue:** #{item.pr} is ready for review" + (f"; review requested from {who}." if who
                                                                      else ".")
    if item.state is ItemState.SNOOZED:
        if item.wake_at:
            return f"**Snoozed** until {local_time(item.wake_at, tz, now)}."
        return f"**Snoozed** until #{item.until_issue} is closed." if item.until_issue else "**Snoozed.**"
    return ""


def _places(n: int) -> str:
    return str(n) if n <= EXACT_PLACES else f"more than {EXACT_PLACES}"


async def show_positions(svc: Services, gh: GitHub, request: RefreshRequest, backlog: Backlog,
                         items: list[Item], limits: Limits, bot_login: str) -> int:
    """Edit the status comments whose line changed; the number edited."""
    now = backlog.clock()
    tz = str(limits.notify.get("timezone") or "UTC")
    ahead, held_ahead = positions(items), held_positions(items)
    allowance = await budget.state(svc.redis, svc.settings, request.installation_id)
    budget_spent = allowance.waiting_line() if allowance.exhausted else ""
    shown = {int(k): v.decode() for k, v in (await backlog.redis.hgetall(backlog.key("lines"))).items()}
    edited = 0
    for item in items:
        line = queue_line(item, ahead, held_ahead, limits, tz, now, budget_spent)
        if shown.get(item.issue, "") == line:
            continue
        status = StatusComment(gh, request.ref, item.issue, bot_login, svc.redis)
        async with lease_lock(svc.redis, keys.issue_lock(request.repo_id, item.issue),
                              lease=svc.settings.worker_heartbeat, wait=ISSUE_LOCK_WAIT_S, log=svc.log):
            state = await status.load()
            if status.comment_id is not None and state.queue != line:
                await status.write(replace(state, queue=line))
                edited += 1
        await backlog.redis.hset(backlog.key("lines"), str(item.issue), line)
    gone = [str(n) for n in shown if n not in {i.issue for i in items}]
    if gone:
        await backlog.redis.hdel(backlog.key("lines"), *gone)
    return edited


async def show_dashboard(svc: Services, gh: GitHub, repo: RepoRef, backlog: Backlog, items: list[Item],
                         limits: Limits, bot_login: str) -> int | None:
    """Create or edit the dashboard issue when its text changed; its number (None while there is no need)."""
    number = await backlog.dashboard()
    if number is None and not items:
        return None
    now = backlog.clock()
    notify = limits.notify
    tz = str(notify.get("timezone") or "UTC")
    try:
        upcoming: datetime | None = next_fire(str(notify.get("schedule") or DEFAULT_SCHEDULE), tz,
                                              datetime.fromtimestamp(now, UTC),
                                              bool(notify.get("business_days_only", True)))
    except ValueError:  # a schedule that never fires on a business day: no digest to announce
        upcoming = None
    body = render_dashboard(repo.full_name, items, cap=limits.max_awaiting_review,
                            in_flight=len(await backlog.running()), now=now, tz=tz, next_digest=upcoming,
                            html_base=html_base(svc.settings, repo.full_name))
    digest = hashlib.sha256(body.encode()).hexdigest()
    if number is not None and await backlog.redis.hget(backlog.key("meta"), "dashboard_hash") == digest.encode():
        return number
    number = await write_dashboard(gh, repo, number, bot_login, body)
    await backlog.redis.hset(backlog.key("meta"), mapping={"dashboard": number, "dashboard_hash": digest})
    return number


async def write_dashboard(gh: GitHub, repo: RepoRef, number: int | None, bot_login: str, body: str) -> int:
    owner, name = repo.owner, repo.name
    if number is None:
        number = await find_dashboard(gh, repo, bot_login)
    if number is not None:
        try:
            await gh.rest.issues.async_update(owner, name, number, body=body)
            return number
        except RequestFailed as exc:
            if exc.response.status_code not in (404, 410):  # deleted by hand: make a new one
                raise
    created: Any = (await gh.rest.issues.async_create(owner, name, title=TITLE, body=body)).json()
    return int(created["number"])


async def find_dashboard(gh: GitHub, repo: RepoRef, bot_login: str) -> int | None:
    """An earlier dashboard of Mull's (Redis may have lost its number): reuse it rather than open a second."""
    owner, name = repo.owner, repo.name
    async for issue in every(gh.rest.issues.async_list_for_repo, owner, name, state="all", creator=bot_login):
        if issue.get("title") == TITLE and markers.by_mull(issue, bot_login) and \
                markers.has(DASHBOARD, issue.get("body"), "last") and not issue.get("pull_request"):
            return int(issue["number"])
    return None


async def ensure_dashboard(svc: Services, gh: GitHub, repo: RepoRef, backlog: Backlog,
                           bot_login: str) -> int | None:
    """The dashboard's number, creating it now if need be (a digest goes there as a comment)."""
    number = await backlog.dashboard()
    if number is not None:
        return number
    return await show_dashboard(svc, gh, repo, backlog, await backlog.items(), await backlog.limits(), bot_login)
