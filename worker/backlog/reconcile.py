"""Rebuilding a repository's backlog from GitHub after Redis lost it.

GitHub holds everything the queue needs: the trigger label marks Mull's issues, the state labels
(``mull:queued``, ``mull:working``, ``mull:waiting``, ``mull:snoozed``, ``mull:awaiting-review``) say where
each stands, the status comment's marker keeps its place in line and who asked, the critique comment's
marker says whether a draft is finished, and the snooze reply's marker keeps the wake time. A run that was
going when Redis went is queued again at its old place; its branch keeps the work already pushed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from githubkit import GitHub

from bot import keys
from bot.jobs import RepoRef, SolveRequest
from worker.backlog import release, snooze
from worker.backlog import store as backlogs
from worker.backlog.jobs import start_runs, touch
from worker.backlog.state import Item, ItemState
from worker.backlog.store import Limits
from worker.critique.comment import read_marker
from worker.github.pages import every
from worker.github.pull_ownership import mull_issue
from worker.jobs.services import Services
from worker.ops import stats
from worker.ops.redis_reply import reply
from worker.repo_config.settings import config_for
from worker.views import labels
from worker.views.status_comment import Phase, StatusComment


async def reconcile_repo(svc: Services, gh: GitHub, repo: RepoRef) -> int:
    """Rebuild one repo's backlog from its issues and pull requests; the number of items found."""
    config = await config_for(svc, gh, repo)
    backlog = backlogs.of(svc, repo.repo_id)
    await backlog.remember_repo(repo.installation_id, repo.full_name, Limits.of(config))
    bot_login = (await svc.github.identity(gh)).login
    pulls = {mull_issue(p, bot_login): p for p in await _all(gh.rest.pulls.async_list, repo.owner, repo.name,
                                                             state="open")}
    pulls.pop(None, None)  # not Mull's
    found = 0
    for issue in await _all(gh.rest.issues.async_list_for_repo, repo.owner, repo.name, state="open",
                            labels=config.label):
        if issue.get("pull_request"):
            continue
        number = int(issue["number"])
        status = StatusComment(gh, repo, number, bot_login, svc.redis)
        state = await status.load()
        seen = Item(issue=number, title=issue.get("title") or "", labeled_at=state.labeled_at or _created(issue),
                    since=backlog.clock(), labeled_by=state.requested_by)
        names = {label["name"] for label in issue.get("labels") or []}
        pull = pulls.get(number)
        placed = await _place(svc, gh, backlog, repo, seen, names, state, pull, bot_login)
        if placed is None:
            continue
        found += 1
        for target in (number, pull["number"] if pull else None):
            if target is not None and snooze.LABEL in (names if target == number else _names(pull)):
                await _restore_snooze(svc, gh, backlog, repo, int(target), bot_login)
    await start_runs(svc, backlog, repo)
    await touch(svc, repo)
    svc.log.info("backlog rebuilt from GitHub", repo=repo.full_name, items=found)
    return found


async def _place(svc: Services, gh: GitHub, backlog: backlogs.Backlog, repo: RepoRef, item: Item, names: set[str],
                 state: Any, pull: dict[str, Any] | None, bot_login: str) -> Item | None:
    """Put one issue back where its labels and markers say it was."""
    if labels.QUEUED in names or labels.WORKING in names:  # a lost run starts again in its old place
        request = SolveRequest(installation_id=repo.installation_id, repo_id=repo.repo_id, repo=repo.full_name,
                               issue=item.issue, requested_by=state.requested_by, trigger=state.trigger or
                               f"rebuilt:{item.issue}")
        await backlog.put(item)  # queued at its old time: enqueue keeps the place of a queued record
        await backlog.enqueue(request, title=item.title)
        return await backlog.get(item.issue)
    if labels.WAITING in names:
        return await _put(backlog, item, ItemState.WAITING, reason=state.note[:200])
    if pull is not None:
        pr = int(pull["number"])
        verdict = await _critique_of(gh, repo, pr, pull["head"]["sha"], bot_login)
        effort = verdict.effort if verdict is not None else None
        if not pull.get("draft"):
            reviewers = tuple(u["login"] for u in pull.get("requested_reviewers") or [])
            await _put(backlog, item, ItemState.DRAFT, pr=pr, effort=effort)
            placed = await backlog.release_to(item.issue, repo.installation_id, reviewers)
            await stats.awaiting_review(svc.redis, repo.full_name, pr, True)
            if release.AWAITING_LABEL not in _names(pull):
                await gh.rest.issues.async_add_labels(repo.owner, repo.name, pr, labels=[release.AWAITING_LABEL])
            return placed
        if verdict is not None and verdict.verdict == "pass":
            candidates = await release.reviewer_candidates(gh, repo, pr, (await backlog.limits()).reviewers,
                                                           item.labeled_by, pull["base"]["ref"])
            return await backlog.hold(Item(issue=item.issue, title=item.title, pr=pr, effort=verdict.effort,
                                           labeled_at=item.labeled_at, labeled_by=item.labeled_by,
                                           extra={"candidates": list(candidates)}))
        return await _put(backlog, item, ItemState.DRAFT, pr=pr, effort=effort)
    if state.phase is Phase.FAILED:
        return await _put(backlog, item, ItemState.FAILED, reason=state.note.removeprefix("**Reason:** ")[:200])
    return None


async def _put(backlog: backlogs.Backlog, item: Item, state: ItemState, **changes: Any) -> Item:
    await backlog.put(item)
    return await backlog.move(item.issue, state, **changes)


async def _restore_snooze(svc: Services, gh: GitHub, backlog: backlogs.Backlog, repo: RepoRef, number: int,
                          bot_login: str) -> None:
    found = None
    for comment in await _all(gh.rest.issues.async_list_comments, repo.owner, repo.name, number):
        found = snooze.parse_marker(comment, bot_login) or found
    if found is None:
        return
    at_ms, until = found
    await snooze.remember(svc, repo, number, at_ms, until, "")
    item = await backlog.find(number)
    if item is not None:
        await backlog.snooze(item.issue, None if until else at_ms / 1000, until)


async def _critique_of(gh: GitHub, repo: RepoRef, pr: int, head_sha: str, bot_login: str) -> Any:
    owner, name = repo.owner, repo.name
    for comment in await _all(gh.rest.issues.async_list_comments, owner, name, pr):
        marker = read_marker(comment, bot_login)
        if marker is not None:
            return marker if marker.sha == head_sha else None
    return None


async def _all(call: Any, *args: Any, **params: Any) -> list[dict[str, Any]]:
    return [item async for item in every(call, *args, **params)]


def _names(pull: dict[str, Any] | None) -> set[str]:
    return {label["name"] for label in (pull or {}).get("labels") or []}


def _created(issue: dict[str, Any]) -> float:
    raw = issue.get("created_at") or ""
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


async def reconcile_if_lost(svc: Services) -> int:
    """At startup: when Redis has no backlog epoch (a new Redis, or one that lost its data), rebuild every
    installation's backlogs from GitHub. One worker does it; the others see the epoch it set."""
    redis = svc.redis
    if not await redis.set(keys.BACKLOG_EPOCH, str(backlogs.of(svc, 0).clock()), nx=True):
        return 0
    rebuilt = 0
    for raw in await reply(redis.hkeys(keys.INSTALLATIONS)):
        installation_id = int(raw)
        gh = svc.github.installation(installation_id)
        try:
            async with gh:
                repos = await _installation_repos(gh)
                for repo in repos:
                    rebuilt += await reconcile_repo(svc, gh, RepoRef.of(installation_id, int(repo["id"]),
                                                                        repo["full_name"]))
        except Exception as exc:  # noqa: BLE001 - one installation's trouble must not stop the others
            svc.log.warning("backlog rebuild failed", installation=installation_id, error=str(exc)[:200])
    return rebuilt


async def _installation_repos(gh: GitHub) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    page = 1
    while True:
        data: Any = (await gh.rest.apps.async_list_repos_accessible_to_installation(per_page=100, page=page)).json()
        out.extend(data.get("repositories") or [])
        if len(data.get("repositories") or []) < 100:
            return out
        page += 1

