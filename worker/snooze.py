"""``/mull snooze``: put an issue or pull request aside until a time, or until another one closes.

A snoozed issue's run waits (its queued job is deferred to the wake time); a snoozed pull request is not
released for review. Label ``mull:snoozed`` shows it. It wakes at the time (a deferred ``wake_item`` job),
on ``/mull unsnooze``, when ``until #N`` closes, or early when someone other than the bot comments,
pushes or reviews.
"""

from __future__ import annotations

import time
from typing import Any

from arq.jobs import JobStatus

from bot import keys
from bot.jobs import QUEUE, WakeRequest, enqueue_wake, solve_job_id
from bot.snooze_time import Wake
from worker import backlog as backlogs
from worker import job_queue, labels, markers, readiness, release, stats
from worker.backlog_jobs import start_runs, touch
from worker.backlog_state import ItemState

LABEL = "mull:snoozed"
KIND = "snooze"
UNTIL_FAR_MS = 90 * 24 * 3600 * 1000  # `until #N` waits at most as long as the longest snooze


async def snoozed_until(redis: Any, repo_id: int, number: int) -> int | None:
    """The wake time (ms) of a snoozed item, or None when it is awake."""
    raw = await redis.hget(keys.snooze(repo_id, number), "at_ms")
    return int(raw) if raw else None


async def snooze(ctx: dict[str, Any], gh: Any, installation_id: int, repo_id: int, repo: str, number: int,
                 wake: Wake, by: str) -> str:
    """Snooze and return the reply's text."""
    at_ms = int(wake.at.timestamp() * 1000) if wake.at else int(time.time() * 1000) + UNTIL_FAR_MS
    redis = ctx["redis"]
    await remember(ctx, installation_id, repo_id, repo, number, at_ms, wake.until_issue, by)
    await _defer_run(redis, repo_id, number, at_ms)
    owner, name = repo.split("/", 1)
    await gh.rest.issues.async_add_labels(owner, name, number, labels=[LABEL])
    await _aside(ctx, gh, installation_id, repo_id, repo, number, wake, at_ms)
    when = f"until #{wake.until_issue} is closed" if wake.until_issue else \
        f"until {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(at_ms / 1000))}"
    note = f" {markers.neutralise(wake.note)}" if wake.note else ""
    return f"snoozed {when}.{note}\n\n{marker(at_ms, wake.until_issue)}"


def marker(at_ms: int, until_issue: int | None) -> str:
    """Hidden in the snooze reply: a backlog rebuilt after a Redis loss reads the wake time back from it."""
    return markers.dump(KIND, {"at_ms": at_ms, "until": until_issue})


def parse_marker(comment: dict[str, Any], bot_login: str) -> tuple[int, int | None] | None:
    """The wake time and ``until`` issue of a snooze reply Mull's bot wrote (the marker is its last line)."""
    data = markers.read(KIND, comment, bot_login, "last")
    if not isinstance(data, dict):
        return None
    try:
        return int(data["at_ms"]), (int(data["until"]) if data.get("until") else None)
    except (ValueError, TypeError, KeyError):
        return None


async def remember(ctx: dict[str, Any], installation_id: int, repo_id: int, repo: str, number: int, at_ms: int,
                   until_issue: int | None, by: str) -> None:
    """The snooze record and its wake job (also how a rebuilt backlog restores a snooze)."""
    redis = ctx["redis"]
    await redis.hset(keys.snooze(repo_id, number), mapping={"at_ms": at_ms, "until": until_issue or "", "by": by})
    if until_issue:
        await redis.sadd(keys.snooze_waiting_on(repo_id, until_issue), number)
    await enqueue_wake(redis, WakeRequest(installation_id, repo_id, repo, number, at_ms))


async def _aside(ctx: dict[str, Any], gh: Any, installation_id: int, repo_id: int, repo: str, number: int,
                 wake: Wake, at_ms: int) -> None:
    """A snoozed item leaves the review queue and the digests: a PR awaiting review goes back to draft."""
    backlog = backlogs.of(ctx, repo_id)
    item = await backlog.find(number)
    if item is None:
        await stats.awaiting_review(ctx["redis"], repo, number, False)
        return
    was = item.state
    await backlog.snooze(item.issue, None if wake.until_issue and not wake.at else at_ms / 1000, wake.until_issue)
    if was is ItemState.AWAITING and item.pr is not None:
        owner, name = repo.split("/", 1)
        pull: Any = (await gh.rest.pulls.async_get(owner, name, item.pr)).json()
        if not pull.get("draft"):
            await gh.async_graphql(readiness.TO_DRAFT, {"id": pull["node_id"]})
        await release.free_slot(ctx, gh, installation_id, repo_id, repo, item.issue, item.pr, "snoozed")
    await touch(ctx, installation_id, repo_id, repo)


async def _back(ctx: dict[str, Any], gh: Any, repo_id: int, repo: str, number: int) -> None:
    """Awake again: a queued run takes its place in line, a finished PR is offered for review again."""
    backlog = backlogs.of(ctx, repo_id)
    item = await backlog.find(number)
    installation_id = await backlog.installation()
    if item is None or installation_id is None:
        return
    woken = await backlog.wake(item.issue)
    if woken is None:
        return
    if woken.state in (ItemState.HELD, ItemState.AWAITING) and woken.pr is not None:
        await backlog.hold(woken)
        await release.release(ctx, gh, installation_id, repo_id, repo)
    elif woken.state is ItemState.QUEUED:
        await start_runs(ctx, backlog, installation_id, repo)
    await touch(ctx, installation_id, repo_id, repo)


async def _defer_run(redis: Any, repo_id: int, number: int, at_ms: int) -> None:
    """A queued run of this issue waits until the wake time (its queue score is its start time)."""
    job_id = solve_job_id(repo_id, number)
    if await job_queue.job(job_id, redis).status() in (JobStatus.queued, JobStatus.deferred):
        await redis.zadd(QUEUE, {job_id: at_ms}, xx=True)


async def wake_up(ctx: dict[str, Any], gh: Any, repo_id: int, repo: str, number: int, reason: str) -> bool:
    """End a snooze now; False when the item was not snoozed."""
    redis = ctx["redis"]
    record = await redis.hgetall(keys.snooze(repo_id, number))
    if not record:
        return False
    await redis.delete(keys.snooze(repo_id, number))
    until = record.get(b"until", b"").decode()
    if until:
        await redis.srem(keys.snooze_waiting_on(repo_id, int(until)), number)
    await _defer_run(redis, repo_id, number, int(time.time() * 1000))
    owner, name = repo.split("/", 1)
    await labels.remove(gh, owner, name, number, LABEL)
    await _back(ctx, gh, repo_id, repo, number)
    ctx["log"].info("woke up", repo=repo, number=number, reason=reason)
    return True


async def wake_dependants(ctx: dict[str, Any], gh: Any, repo_id: int, repo: str, closed: int) -> int:
    """``until #closed`` snoozes end when ``closed`` closes."""
    woken = 0
    for raw in await ctx["redis"].smembers(keys.snooze_waiting_on(repo_id, closed)):
        woken += await wake_up(ctx, gh, repo_id, repo, int(raw), f"#{closed} closed")
    await ctx["redis"].delete(keys.snooze_waiting_on(repo_id, closed))
    return woken


async def wake_item(ctx: dict[str, Any], request: WakeRequest) -> str:
    """The deferred job that ends a timed snooze, unless a later snooze or a wake came first."""
    if await snoozed_until(ctx["redis"], request.repo_id, request.number) != request.at_ms:
        return "stale"
    gh = ctx["github"].installation(request.installation_id, request.repo_id)
    async with gh:
        await wake_up(ctx, gh, request.repo_id, request.repo, request.number, "time")
    return "woke"
