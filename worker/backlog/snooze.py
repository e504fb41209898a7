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
from bot.jobs import QUEUE, RepoRef, WakeRequest, enqueue_wake, solve_job_id
from bot.snooze_time import Wake
from worker import lifecycle
from worker.backlog import readiness, release
from worker.backlog import store as backlogs
from worker.backlog.jobs import start_runs
from worker.backlog.state import ItemState
from worker.jobs import queue as job_queue
from worker.jobs.services import Services, services
from worker.lifecycle import Stage
from worker.ops import stats
from worker.ops.redis_reply import reply
from worker.views import labels, markers

LABEL = "mull:snoozed"
KIND = "snooze"
UNTIL_FAR_MS = 90 * 24 * 3600 * 1000  # `until #N` waits at most as long as the longest snooze


async def snoozed_until(redis: Any, repo_id: int, number: int) -> int | None:
    """The wake time (ms) of a snoozed item, or None when it is awake."""
    raw = await redis.hget(keys.snooze(repo_id, number), "at_ms")
    return int(raw) if raw else None


async def snooze(svc: Services, gh: Any, repo: RepoRef, number: int, wake: Wake, by: str) -> str:
    """Snooze and return the reply's text."""
    at_ms = int(wake.at.timestamp() * 1000) if wake.at else int(time.time() * 1000) + UNTIL_FAR_MS
    await remember(svc, repo, number, at_ms, wake.until_issue, by)
    await _defer_run(svc.redis, repo.repo_id, number, at_ms)
    await gh.rest.issues.async_add_labels(repo.owner, repo.name, number, labels=[LABEL])
    await _aside(svc, gh, repo, number, wake, at_ms)
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


async def remember(svc: Services, repo: RepoRef, number: int, at_ms: int, until_issue: int | None,
                   by: str) -> None:
    """The snooze record and its wake job (also how a rebuilt backlog restores a snooze)."""
    redis = svc.redis
    await reply(redis.hset(keys.snooze(repo.repo_id, number), mapping={"at_ms": at_ms, "until": until_issue or "",
                                                                "by": by}))
    if until_issue:
        await reply(redis.sadd(keys.snooze_waiting_on(repo.repo_id, until_issue), number))
    await enqueue_wake(redis, WakeRequest(repo.installation_id, repo.repo_id, repo.full_name, number, at_ms))


async def _aside(svc: Services, gh: Any, repo: RepoRef, number: int, wake: Wake, at_ms: int) -> None:
    """A snoozed item leaves the review queue and the digests: a PR awaiting review goes back to draft."""
    item = await backlogs.of(svc, repo.repo_id).find(number)
    if item is None:
        await stats.awaiting_review(svc.redis, repo.full_name, number, False)
        return
    was = item.state
    issue_run = lifecycle.of(svc, gh, repo, item.issue, (await svc.github.identity(gh)).login)
    await issue_run.move(Stage.SNOOZED, wake_at=None if wake.until_issue and not wake.at else at_ms / 1000,
                         until_issue=wake.until_issue)
    if was is ItemState.AWAITING and item.pr is not None:
        pull: Any = (await gh.rest.pulls.async_get(repo.owner, repo.name, item.pr)).json()
        if not pull.get("draft"):
            await gh.async_graphql(readiness.TO_DRAFT, {"id": pull["node_id"]})
        await release.free_slot(svc, gh, repo, item.issue, item.pr, "snoozed")


async def _back(svc: Services, gh: Any, repo: RepoRef, number: int) -> None:
    """Awake again: a queued run takes its place in line, a finished PR is offered for review again."""
    backlog = backlogs.of(svc, repo.repo_id)
    item = await backlog.find(number)
    if item is None:
        return
    issue_run = lifecycle.of(svc, gh, repo, item.issue, (await svc.github.identity(gh)).login)
    woken = await issue_run.wake()
    if woken is None:
        return
    if woken.state in (ItemState.HELD, ItemState.AWAITING) and woken.pr is not None:
        await issue_run.move(Stage.HELD, pr=woken.pr, effort=woken.effort)  # offered again, in release order
        await release.release(svc, gh, repo)
    elif woken.state is ItemState.QUEUED:
        await start_runs(svc, backlog, repo)


async def _defer_run(redis: Any, repo_id: int, number: int, at_ms: int) -> None:
    """A queued run of this issue waits until the wake time (its queue score is its start time)."""
    job_id = solve_job_id(repo_id, number)
    if await job_queue.job(job_id, redis).status() in (JobStatus.queued, JobStatus.deferred):
        await redis.zadd(QUEUE, {job_id: at_ms}, xx=True)


async def wake_up(svc: Services, gh: Any, repo: RepoRef, number: int, reason: str) -> bool:
    """End a snooze now; False when the item was not snoozed."""
    redis = svc.redis
    record = await reply(redis.hgetall(keys.snooze(repo.repo_id, number)))
    if not record:
        return False
    await redis.delete(keys.snooze(repo.repo_id, number))
    until = record.get(b"until", b"").decode()
    if until:
        await reply(redis.srem(keys.snooze_waiting_on(repo.repo_id, int(until)), number))
    await _defer_run(redis, repo.repo_id, number, int(time.time() * 1000))
    await labels.remove(gh, repo, number, LABEL)
    await _back(svc, gh, repo, number)
    svc.log.info("woke up", repo=repo.full_name, number=number, reason=reason)
    return True


async def wake_dependants(svc: Services, gh: Any, repo: RepoRef, closed: int) -> int:
    """``until #closed`` snoozes end when ``closed`` closes."""
    woken = 0
    for raw in await reply(svc.redis.smembers(keys.snooze_waiting_on(repo.repo_id, closed))):
        woken += await wake_up(svc, gh, repo, int(raw), f"#{closed} closed")
    await svc.redis.delete(keys.snooze_waiting_on(repo.repo_id, closed))
    return woken


async def wake_item(ctx: dict[str, Any], request: WakeRequest) -> str:
    """The deferred job that ends a timed snooze, unless a later snooze or a wake came first."""
    svc = services(ctx)
    if await snoozed_until(svc.redis, request.repo_id, request.number) != request.at_ms:
        return "stale"
    gh = svc.github.installation(request.installation_id, request.repo_id)
    async with gh:
        await wake_up(svc, gh, request.ref, request.number, "time")
    return "woke"
