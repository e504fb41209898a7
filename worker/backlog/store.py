"""One repository's backlog in Redis: which labeled issues wait for an agent, which run, which finished pull
requests wait for a review slot, which await review, and by whom.

Two limits from the repo's config keep the humans' queue sane: ``max_in_flight`` agent runs at a time, and
``max_awaiting_review`` Mull pull requests out of draft (also per reviewer across an installation's repos).
Everything here is Redis only, so it can be tested and simulated without GitHub; ``worker.backlog.release`` does the
GitHub side. Scripts make each move atomic, so several workers never start or release one item twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from arq import constants as arq_keys
from arq.jobs import serialize_job

from bot import keys
from bot.job_codec import serialize
from bot.jobs import QUEUE, SOLVE_ISSUE, RepoRef, SolveRequest, solve_job_prefix
from worker.backlog.state import Item, ItemState, held_order
from worker.jobs.services import Services
from worker.repo_config import RepoConfig

Clock = Callable[[], float]
ARQ_JOB_PREFIX, ARQ_RESULT_PREFIX = arq_keys.job_key_prefix, arq_keys.result_key_prefix

# Start queued issues, oldest first, while fewer than ``limit`` run; snoozed ones keep their place but wait.
# Starting one is one step: it moves to ``running`` and its solve job goes into arq's queue together (the job as
# arq stores it was made when the issue was queued), so no worker death between the two can leave a slot taken
# by a run that no job will ever do. An issue whose previous run arq still holds keeps its place, and waits.
# KEYS: waiting, running, meta, jobs, arq's queue, the new-work signal (bot/keys.py). ARGV: default limit, now (s),
# snooze prefix, arq job prefix and arq result prefix of this repo's solve jobs, job expiry (ms), now (ms), solve
# job id prefix, the signal's longest length - 1.
# Returns the issues started; "?<issue>" for one queued before jobs were kept here (its caller enqueues it).
_PUMP = """
local limit = tonumber(redis.call('HGET', KEYS[3], 'max_in_flight') or ARGV[1])
local free = limit - redis.call('ZCARD', KEYS[2])
local started = {}
if free <= 0 then return started end
for _, issue in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if free <= 0 then break end
  if redis.call('EXISTS', ARGV[3] .. issue) == 0 then
    local job = redis.call('HGET', KEYS[4], issue)
    if not job or redis.call('EXISTS', ARGV[4] .. issue, ARGV[5] .. issue) == 0 then
      redis.call('ZREM', KEYS[1], issue)
      redis.call('ZADD', KEYS[2], ARGV[2], issue)
      if job then
        redis.call('PSETEX', ARGV[4] .. issue, ARGV[6], job)
        redis.call('ZADD', KEYS[5], ARGV[7], ARGV[8] .. issue)
        table.insert(started, issue)
      else
        table.insert(started, '?' .. issue)
      end
      free = free - 1
    end
  end
end
if #started > 0 then
  redis.call('LPUSH', KEYS[6], '1')
  redis.call('LTRIM', KEYS[6], 0, ARGV[9])
end
return started
"""
SOLVE_JOB_EXPIRES_MS = 24 * 3600 * 1000  # arq's default for a job not yet started

# Queue an issue's run. KEYS: waiting, running, requests, jobs, items, meta, the asking delivery's mark.
# ARGV: issue, request (JSON), its solve job as arq stores it, labeled at, item (JSON), mark TTL, "1" with a mark.
_ENQUEUE = """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
if ARGV[7] == '1' and not redis.call('SET', KEYS[7], '1', 'NX', 'EX', ARGV[6]) then return 0 end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[4], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[1], 'NX', ARGV[4], ARGV[1])
redis.call('HSET', KEYS[5], ARGV[1], ARGV[5])
redis.call('HINCRBY', KEYS[6], 'version', 1)
return 1
"""
ASKED_TTL_S = keys.SEEN_TTL_MS // 1000  # as long as the receiver dedupes the delivery itself

DEFAULT_IN_FLIGHT = 2
DEFAULT_AWAITING = 3


@dataclass(frozen=True)
class Limits:
    max_in_flight: int = DEFAULT_IN_FLIGHT
    max_awaiting_review: int = DEFAULT_AWAITING
    reviewers: tuple[str, ...] = ()
    notify: dict[str, Any] = field(default_factory=dict)  # timezone, digest schedule, sinks: worker.views.digests

    @classmethod
    def of(cls, config: RepoConfig) -> Limits:
        """What the backlog needs from a repo's configuration, kept in Redis so sweeps need no GitHub call."""
        return cls(max_in_flight=config.max_in_flight, max_awaiting_review=config.max_awaiting_review,
                   reviewers=tuple(config.reviewers), notify={
                       "timezone": config.timezone, "schedule": config.digest.schedule,
                       "business_days_only": config.digest.business_days_only, "sinks": config.sinks.model_dump()})


class Backlog:
    """The backlog of one repository."""

    def __init__(self, redis: Any, repo_id: int, clock: Clock = time.time) -> None:
        self.redis = redis
        self.repo_id = repo_id
        self.clock = clock
        self._pump = redis.register_script(_PUMP)
        self._enqueue = redis.register_script(_ENQUEUE)

    def key(self, part: str) -> str:
        return keys.backlog(self.repo_id, part)

    # --- records ---------------------------------------------------------------------------------------------

    async def remember_repo(self, installation_id: int, repo: str, limits: Limits | None = None) -> None:
        """Note the repo (cron sweeps and digests walk these) and the settings its config has now, so the
        sweeps need no GitHub call to know them."""
        await self.redis.hset(keys.BACKLOG_REPOS, str(self.repo_id),
                              json.dumps({"installation_id": installation_id, "repo": repo}))
        if limits is not None:
            await self.redis.hset(self.key("meta"), mapping={
                "max_in_flight": limits.max_in_flight, "max_awaiting_review": limits.max_awaiting_review,
                "reviewers": json.dumps(list(limits.reviewers)), "notify": json.dumps(limits.notify)})

    async def installation(self) -> int | None:
        raw = await self.redis.hget(keys.BACKLOG_REPOS, str(self.repo_id))
        return int(json.loads(raw)["installation_id"]) if raw else None

    async def limits(self) -> Limits:
        raw = await self.redis.hgetall(self.key("meta"))
        return Limits(max_in_flight=int(raw.get(b"max_in_flight") or DEFAULT_IN_FLIGHT),
                      max_awaiting_review=int(raw.get(b"max_awaiting_review") or DEFAULT_AWAITING),
                      reviewers=tuple(json.loads(raw.get(b"reviewers") or b"[]")),
                      notify=json.loads(raw.get(b"notify") or b"{}"))

    async def get(self, issue: int) -> Item | None:
        raw = await self.redis.hget(self.key("items"), str(issue))
        return Item.from_json(raw) if raw else None

    async def items(self) -> list[Item]:
        return sorted((Item.from_json(v) for v in (await self.redis.hgetall(self.key("items"))).values()),
                      key=lambda item: item.issue)

    async def find(self, number: int) -> Item | None:
        """The record of an issue, or of the issue whose pull request ``number`` is."""
        item = await self.get(number)
        if item is not None:
            return item
        return next((i for i in await self.items() if i.pr == number), None)

    async def put(self, item: Item) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.key("items"), str(item.issue), item.to_json())
            pipe.hincrby(self.key("meta"), "version", 1)
            await pipe.execute()

    async def move(self, issue: int, state: ItemState, **changes: Any) -> Item:
        """Record a state change of an issue (creating its record when Mull had none)."""
        item = await self.get(issue) or Item(issue=issue, labeled_at=self.clock())
        if item.state is ItemState.SNOOZED and state is not ItemState.SNOOZED:
            # Work goes on while it sleeps (a run finishes, a PR opens); it shows again when it wakes.
            item = replace(item, **{**changes, "extra": {**item.extra, **changes.get("extra", {}),
                                                         "before": state.value}})
        else:
            item = item.moved(state, self.clock(), **changes)
        await self.put(item)
        return item

    async def forget(self, issue: int) -> Item | None:
        """Merged, closed or unlabeled: the issue leaves every list."""
        item = await self.get(issue)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self.key("items"), str(issue))
            pipe.hdel(self.key("requests"), str(issue))
            pipe.hdel(self.key("jobs"), str(issue))
            pipe.hdel(self.key("bases"), str(issue))
            for part in ("waiting", "running", "held"):
                pipe.zrem(self.key(part), str(issue))
            pipe.srem(self.key("ready"), str(issue))
            pipe.hincrby(self.key("meta"), "version", 1)
            await pipe.execute()
        return item

    async def set_base(self, issue: int, branch: str | None, source: str = "command") -> None:
        """The branch (a checked name) the issue's next run starts from and its pull request targets, and where
        the choice came from (``command`` or ``body``); None forgets it: the default branch."""
        if branch is None:
            await self.redis.hdel(self.key("bases"), str(issue))
        else:
            await self.redis.hset(self.key("bases"), str(issue), json.dumps({"branch": branch, "from": source}))

    async def base_choice(self, issue: int) -> tuple[str, str] | None:
        """(branch, where the choice came from) for the issue; None: the repository's default branch."""
        raw = await self.redis.hget(self.key("bases"), str(issue))
        if not raw:
            return None
        data = json.loads(raw)
        return str(data["branch"]), str(data.get("from") or "command")

    async def base(self, issue: int) -> str | None:
        """The branch chosen for the issue; None: the repository's default branch."""
        choice = await self.base_choice(issue)
        return choice[0] if choice else None

    async def dashboard(self) -> int | None:
        """The number of the repo's "Mull review queue" issue, once there is one."""
        raw = await self.redis.hget(self.key("meta"), "dashboard")
        return int(raw) if raw else None

    async def version(self) -> int:
        return int(await self.redis.hget(self.key("meta"), "version") or 0)

    # --- agent runs --------------------------------------------------------------------------------------------

    async def is_pending(self, issue: int) -> bool:
        """Queued or running as far as the backlog knows."""
        return (await self.redis.zscore(self.key("waiting"), str(issue)) is not None
                or await self.redis.zscore(self.key("running"), str(issue)) is not None)

    async def enqueue(self, request: SolveRequest, title: str = "", asked_by: str | None = None) -> bool:
        """Put an issue's run in line, in one step; False when it is already queued or running, or when
        ``asked_by`` (the delivery asking) queued a run before: its handling, retried after a worker died, must
        not queue a second run once the first has ended."""
        now = self.clock()
        previous = await self.get(request.issue)
        labeled_at = previous.labeled_at if previous and previous.state is ItemState.QUEUED else now
        job = serialize_job(SOLVE_ISSUE, (request,), {}, None, int(time.time() * 1000), serializer=serialize)
        base = previous or Item(issue=request.issue)  # a rerun keeps its PR, reviewers and snooze count
        item = replace(base, title=title or base.title, state=ItemState.QUEUED, labeled_at=labeled_at, since=now,
                       labeled_by=request.requested_by, reason="")
        return bool(await self._enqueue(
            keys=[self.key("waiting"), self.key("running"), self.key("requests"), self.key("jobs"),
                  self.key("items"), self.key("meta"), keys.run_asked(asked_by or "-")],
            args=[str(request.issue), json.dumps(asdict(request)), job, labeled_at, item.to_json(),
                  ASKED_TTL_S, "1" if asked_by else "0"]))

    async def start_next(self) -> list[tuple[SolveRequest, bool]]:
        """Move queued issues into free run slots with their solve jobs; (request, whether its job is queued).
        A job not queued here is the caller's to enqueue (an issue queued before jobs were kept with it)."""
        prefix = solve_job_prefix(self.repo_id)
        started = await self._pump(
            keys=[self.key("waiting"), self.key("running"), self.key("meta"), self.key("jobs"), QUEUE, keys.NEW_WORK],
            args=[DEFAULT_IN_FLIGHT, self.clock(), keys.snoozed_items(self.repo_id), ARQ_JOB_PREFIX + prefix,
                  ARQ_RESULT_PREFIX + prefix, SOLVE_JOB_EXPIRES_MS, int(time.time() * 1000), prefix,
                  keys.NEW_WORK_MAX - 1])
        requests = []
        for raw in started:
            issue = raw.decode().lstrip("?")
            data = await self.redis.hget(self.key("requests"), issue)
            if data:
                requests.append((SolveRequest(**json.loads(data)), not raw.startswith(b"?")))
            else:  # no request to run: nothing can start it, so it must not hold a slot
                await self.redis.zrem(self.key("running"), issue)
        return requests

    async def run_ended(self, issue: int) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.key("running"), str(issue))
            pipe.hdel(self.key("requests"), str(issue))
            pipe.hdel(self.key("jobs"), str(issue))
            await pipe.execute()

    async def requeue(self, issue: int) -> None:
        """Back in line, in its old place: its run could not start after all."""
        item = await self.get(issue)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.key("running"), str(issue))
            pipe.zadd(self.key("waiting"), {str(issue): item.labeled_at if item else self.clock()})
            await pipe.execute()

    async def unqueue(self, issue: int) -> bool:
        """``/mull stop`` before the run started: it leaves the line."""
        removed = await self.redis.zrem(self.key("waiting"), str(issue))
        await self.redis.hdel(self.key("requests"), str(issue))
        await self.redis.hdel(self.key("jobs"), str(issue))
        return bool(removed)

    async def waiting(self) -> list[int]:
        return [int(x) for x in await self.redis.zrange(self.key("waiting"), 0, -1)]

    async def running(self) -> list[int]:
        return [int(x) for x in await self.redis.zrange(self.key("running"), 0, -1)]

    async def ahead_of(self, issue: int) -> int | None:
        """Queued issues that will start before this one (snoozed ones wait, so they are not ahead)."""
        order = await self.waiting()
        if issue not in order:
            return None
        ahead = 0
        for other in order[:order.index(issue)]:
            ahead += not await self.redis.exists(keys.snooze(self.repo_id, other))
        return ahead

    # --- review slots ------------------------------------------------------------------------------------------

    async def hold(self, item: Item) -> Item:
        """A finished pull request waits for a review slot, in release order."""
        base = await self.get(item.issue) or item
        held = base.moved(ItemState.HELD, self.clock(), pr=item.pr, effort=item.effort, reason=item.reason,
                          extra={**base.extra, **item.extra})
        await self.put(held)
        order = held_order(held)
        await self.redis.zadd(self.key("held"), {str(item.issue): order[0] * 10 + order[1]})
        return held

    async def held(self) -> list[int]:
        """Held issues in release order (``held_order``: the same order the dashboard and status show)."""
        members = [int(x) for x in await self.redis.zrange(self.key("held"), 0, -1)]
        items = {item.issue: item for item in await self.items() if item.issue in members}
        return sorted(members, key=lambda n: held_order(items[n]) if n in items else (2**62, 0, n))

    async def ready(self) -> set[int]:
        return {int(x) for x in await self.redis.smembers(self.key("ready"))}

    async def release_to(self, issue: int, installation_id: int, reviewers: tuple[str, ...]) -> Item:
        """Out of draft: the issue takes a review slot here and one with each reviewer."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.key("held"), str(issue))
            pipe.sadd(self.key("ready"), str(issue))
            for login in reviewers:
                pipe.sadd(keys.reviewer_load(installation_id, login), f"{self.repo_id}:{issue}")
            await pipe.execute()
        return await self.move(issue, ItemState.AWAITING, reviewers=reviewers, reason="")

    async def leave_review(self, issue: int, installation_id: int) -> Item | None:
        """Its review slot frees (merged, closed, back to draft, snoozed); the item keeps its record."""
        item = await self.get(issue)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.srem(self.key("ready"), str(issue))
            pipe.zrem(self.key("held"), str(issue))
            for login in item.reviewers if item else ():
                pipe.srem(keys.reviewer_load(installation_id, login), f"{self.repo_id}:{issue}")
            await pipe.execute()
        return item

    async def snooze(self, issue: int, wake_at: float | None, until_issue: int | None) -> Item:
        """Aside until it wakes: out of the review queue (a snoozed run keeps its place in line)."""
        item = await self.get(issue) or Item(issue=issue, labeled_at=self.clock())
        before = item.extra.get("before", item.state.value) if item.state is ItemState.SNOOZED else item.state.value
        snoozed = item.moved(ItemState.SNOOZED, self.clock(), wake_at=wake_at, until_issue=until_issue,
                             snoozes=item.snoozes + 1, extra={**item.extra, "before": before})
        await self.put(snoozed)
        return snoozed

    async def wake(self, issue: int) -> Item | None:
        """Back to where it was before the snooze; the caller offers a finished PR for review again."""
        item = await self.get(issue)
        if item is None or item.state is not ItemState.SNOOZED:
            return item
        before = ItemState(item.extra.get("before", ItemState.QUEUED.value))
        extra = {k: v for k, v in item.extra.items() if k != "before"}
        woken = replace(item.moved(before, self.clock(), extra=extra), wake_at=None, until_issue=None)
        await self.put(woken)
        return woken


def of(svc: Services, repo_id: int) -> Backlog:
    """The backlog of a repository, on the job's Redis and clock (simulations give a fake clock)."""
    return Backlog(svc.redis, repo_id, svc.clock)


async def reviewer_load(redis: Any, installation_id: int, login: str) -> int:
    return int(await redis.scard(keys.reviewer_load(installation_id, login)))


async def awaiting_reviewer(redis: Any, installation_id: int, login: str) -> list[tuple[str, int]]:
    """(owner/name, pull request) of the Mull pull requests awaiting ``login``'s review, in any repository of
    the installation, oldest repository id and issue first."""
    names = {repo_id: repo for repo_id, _installation, repo in await known_repos(redis)}
    found = []
    for member in sorted(await redis.smembers(keys.reviewer_load(installation_id, login))):
        repo_id, _, issue = (member.decode() if isinstance(member, bytes) else str(member)).partition(":")
        item = await Backlog(redis, int(repo_id)).get(int(issue))
        if int(repo_id) in names and item is not None and item.pr is not None:
            found.append((names[int(repo_id)], item.pr))
    return found


async def known_repos(redis: Any) -> list[tuple[int, int, str]]:
    """(repo id, installation id, owner/name) of every repository with a backlog."""
    found = []
    for repo_id, raw in (await redis.hgetall(keys.BACKLOG_REPOS)).items():
        data = json.loads(raw)
        found.append((int(repo_id), int(data["installation_id"]), str(data["repo"])))
    return sorted(found)


async def known_refs(redis: Any) -> list[RepoRef]:
    """Every repository with a backlog, by ``RepoRef``."""
    return [RepoRef.of(installation_id, repo_id, name) for repo_id, installation_id, name in await known_repos(redis)]
