"""Redeliver webhooks Mull failed to take: GitHub shows a failed delivery but never retries it by itself.

A cron job reads the App's delivery log (``GET /app/hook/deliveries``, newest first) back to the last run's
mark and asks GitHub to redeliver every guid with no 2xx attempt. A redelivery can fail too (Redis was still
down, the receiver restarting): its failed attempt is in the log, so a later run finds the guid again and
redelivers it once more, at most ``TRIES_PER_GUID`` times and no sooner than half a period after the last
(one try per run: with the default period, five minutes apart); then Mull gives up on it with an error in the
log. The receiver dedupes on X-GitHub-Delivery, so an extra redelivery is harmless anyway. Work per run is
capped; a scan cut short resumes from its cursor next run, and the mark never passes a guid left for a later
run, so a backlog is never skipped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from githubkit import GitHub
from githubkit.exception import GitHubException, RequestFailed
from githubkit.utils import UNSET

from bot import keys
from worker.github.app import GitHubApp
from worker.github.failures import is_transient
from worker.jobs.services import services

LOOKBACK_S = 3600  # first run: how far back to look
OVERLAP_S = 60  # re-read this much before the newest delivery seen: one in flight may be listed late
REDELIVERED_TTL_S = 3 * 24 * 3600  # GitHub keeps deliveries (and allows redelivery) about this long
PER_PAGE = 100
MAX_ITEMS = 500
MAX_REDELIVERIES = 50
TRIES_PER_GUID = 3

# KEYS: the guid's record. ARGV: now (s), least gap (s), tries allowed, record TTL (s). The try this claims
# (1, 2, ...), 0 when the last one is too recent, -1 when every try is spent (-2 the first time: say so).
_CLAIM = """
local tries = tonumber(redis.call('HGET', KEYS[1], 'tries') or '0')
local at = tonumber(redis.call('HGET', KEYS[1], 'at') or '0')
if tries >= tonumber(ARGV[3]) then
  if redis.call('HSETNX', KEYS[1], 'given_up', ARGV[1]) == 1 then return -2 end
  return -1
end
if tries > 0 and tonumber(ARGV[1]) - at < tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], 'tries', tries + 1, 'at', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return tries + 1
"""


@dataclass
class Guid:
    """All attempts of one event seen in the window."""

    first_at: float
    delivery_id: int  # the oldest attempt's: ids grow with time, so it also orders guids sent the same second
    ok: bool = False


@dataclass
class Scan:
    guids: dict[str, Guid] = field(default_factory=dict)
    newest: float | None = None
    next_cursor: str | None = None  # set when the scan stopped at MAX_ITEMS before reaching the mark
    items: int = 0


async def redeliver_failed(ctx: dict[str, Any]) -> int:
    """arq cron job: the number of deliveries GitHub was asked to redeliver (0 when GitHub failed us)."""
    svc = services(ctx)
    return await redeliver(svc.github, svc.redis, svc.log, retry_after=svc.settings.redeliver_interval / 2)


async def redeliver(github: GitHubApp, redis: Any, log: Any, *, per_page: int = PER_PAGE,
                    max_items: int = MAX_ITEMS, max_redeliveries: int = MAX_REDELIVERIES,
                    retry_after: float = 150.0) -> int:
    """One pass; page size and caps are parameters so tests can drive paging and carry-over cheaply.
    ``retry_after``: least seconds between two redeliveries of one guid (one per run: half the period)."""
    state = {k.decode(): v.decode() for k, v in (await redis.hgetall(keys.REDELIVER)).items()}
    since = float(state.get("since") or time.time() - LOOKBACK_S)
    resume = state.get("cursor")
    async with github.app as gh:
        try:
            scan = await _scan(gh, since, resume, per_page, max_items)
        except GitHubException as exc:
            log.error("webhook redelivery: could not list the App's deliveries, trying again next run",
                      error=_describe(exc), status=_status(exc))
            if resume and _status(exc) in (400, 404, 422):  # a stale cursor must not wedge every later run
                await redis.hdel(keys.REDELIVER, "cursor", "ceiling")
            return 0
        count, pending_from = await _redeliver(gh, redis, log, scan, max_redeliveries, retry_after)
    await _save(redis, log, state, since, scan, pending_from)
    if count or pending_from is not None:
        log.info("webhook redelivery", redelivered=count, scanned=scan.items,
                 failed=sum(not g.ok for g in scan.guids.values()))
    return count


async def _scan(gh: GitHub, since: float, cursor: str | None, per_page: int, max_items: int) -> Scan:
    """Group the attempts newer than ``since`` by guid, newest page first, until the mark or the cap."""
    scan = Scan()
    while True:
        response = await gh.rest.apps.async_list_webhook_deliveries(per_page=per_page, cursor=cursor or UNSET)
        items = response.json()
        reached_mark = False
        for item in items:
            at = datetime.fromisoformat(item["delivered_at"]).timestamp()
            if at < since:
                reached_mark = True
                continue
            scan.items += 1
            scan.newest = at if scan.newest is None else max(scan.newest, at)
            guid = scan.guids.get(item["guid"])
            if guid is None:
                guid = scan.guids[item["guid"]] = Guid(at, int(item["id"]))
            guid.first_at, guid.delivery_id = min(guid.first_at, at), min(guid.delivery_id, int(item["id"]))
            guid.ok = guid.ok or 200 <= int(item.get("status_code") or 0) < 300
        cursor = _next_cursor(response.raw_response)
        if reached_mark or not items or cursor is None:
            return scan
        if scan.items >= max_items:
            scan.next_cursor = cursor
            return scan


async def _redeliver(gh: GitHub, redis: Any, log: Any, scan: Scan, limit: int,
                     retry_after: float) -> tuple[int, float | None]:
    """Redeliver failed guids oldest first; also returns when the first one left for a later run was sent."""
    failed = sorted((g for g in scan.guids.items() if not g[1].ok), key=lambda g: (g[1].first_at, g[1].delivery_id))
    count = 0
    pending_from: float | None = None
    for guid, seen in failed:
        if count >= limit:
            log.warning("webhook redelivery capped; the rest go next run", limit=limit,
                        left=len(failed) - failed.index((guid, seen)))
            return count, _earliest(pending_from, seen.first_at)
        key = keys.redelivered(guid)
        previous = await redis.hgetall(key)
        claimed = await redis.eval(_CLAIM, 1, key, str(time.time()), str(retry_after), str(TRIES_PER_GUID),
                                   str(REDELIVERED_TTL_S))
        if claimed == 0:
            # Redelivered a moment ago (or another run is on it). Should that redelivery fail, its attempt is
            # listed after this run's mark, so a later run finds the guid again.
            continue
        if claimed < 0:
            if claimed == -2:
                log.error("webhook redelivery given up: every redelivery of this delivery failed; redeliver it "
                          "from the GitHub App's advanced settings once Mull is healthy", guid=guid,
                          tries=TRIES_PER_GUID)
            continue
        try:
            await gh.rest.apps.async_redeliver_webhook_delivery(seen.delivery_id)
        except GitHubException as exc:
            if is_transient(exc):
                await _unclaim(redis, key, previous)
                log.error("webhook redelivery: GitHub failed, trying again next run", guid=guid,
                          error=_describe(exc), status=_status(exc))
                return count, _earliest(pending_from, seen.first_at)
            log.warning("webhook redelivery refused", guid=guid, error=_describe(exc), status=_status(exc))
            continue
        if claimed > 1:
            log.warning("webhook redelivered again: its last redelivery failed too", guid=guid, attempt=claimed)
        count += 1
    return count, pending_from


def _earliest(when: float | None, other: float) -> float:
    return other if when is None else min(when, other)


async def _unclaim(redis: Any, key: str, previous: dict[bytes, bytes]) -> None:
    """GitHub did not take the redelivery: it is not a try."""
    async with redis.pipeline(transaction=True) as tx:
        tx.delete(key)
        if previous:
            tx.hset(key, mapping=previous)
            tx.expire(key, REDELIVERED_TTL_S)
        await tx.execute()


async def _save(redis: Any, log: Any, state: dict[str, str], since: float, scan: Scan,
                pending_from: float | None) -> None:
    """Move the mark only past what was checked and redelivered; a scan cut short stores where to go on."""
    ceiling = float(state["ceiling"]) if "ceiling" in state else scan.newest  # top of a scan in pieces
    if scan.next_cursor and pending_from is None:
        log.warning("webhook redelivery scan capped; older deliveries are checked next run", scanned=scan.items)
        await redis.hset(keys.REDELIVER, mapping={"since": str(since), "cursor": scan.next_cursor,
                                                  "ceiling": str(since if ceiling is None else ceiling)})
        return
    if scan.next_cursor:  # failures left over above the cursor: next run starts from the top again
        mark = since
    elif pending_from is not None:  # everything older than the first failure left over was handled
        mark = max(since, pending_from)
    else:
        mark = since if ceiling is None else max(since, ceiling - OVERLAP_S)
    await redis.hdel(keys.REDELIVER, "cursor", "ceiling")
    await redis.hset(keys.REDELIVER, "since", str(mark))


def _next_cursor(response: httpx.Response) -> str | None:
    """The ``cursor`` of the Link header's rel="next" page (the delivery log pages by cursor, not number)."""
    url = response.links.get("next", {}).get("url")
    return httpx.URL(url).params.get("cursor") if url else None


def _status(exc: GitHubException) -> int | None:
    return exc.response.status_code if isinstance(exc, RequestFailed) else None


def _describe(exc: GitHubException) -> str:
    """One line: the status and GitHub's message, with a hint for the usual 401 cause."""
    if not isinstance(exc, RequestFailed):
        return f"{type(exc).__name__}: {exc}"
    response = exc.response
    try:
        body = response.json()
    except ValueError:
        body = None
    message = body.get("message", "") if isinstance(body, dict) else response.raw_response.text[:200]
    hint = " (check MULL_APP_ID and the App's private key)" if response.status_code == 401 else ""
    return f"HTTP {response.status_code}: {message}{hint}"
