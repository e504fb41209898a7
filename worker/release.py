"""Releasing finished Mull pull requests for review at the pace people review them.

A finished PR (critique passed or its fix rounds ran out, checks green) is *offered*: it joins the held
drafts in release order. ``release`` then takes held PRs out of draft while the repo has fewer than
``max_awaiting_review`` awaiting review and their reviewer has fewer than that across the installation, and
requests that one review at that moment, never earlier. A merge, a close, a human's convert-to-draft or a
snooze frees the slot, and the next one goes.
"""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

from githubkit import GitHub
from githubkit.exception import RequestFailed

from bot import keys
from worker import backlog as backlogs
from worker import codeowners, labels, readiness, stats
from worker.backlog import reviewer_load
from worker.backlog_jobs import touch
from worker.backlog_state import Item, ItemState
from worker.needs_you import count, html_base
from worker.reviewer_cap import HELD_BY, at_cap, busy_reviewers

AWAITING_LABEL = "mull:awaiting-review"


async def reviewer_candidates(gh: GitHub, repo: str, pr: int, configured: tuple[str, ...], labeled_by: str,
                              ref: str) -> tuple[str, ...]:
    """Who may review: ``reviewers:`` from the config, else CODEOWNERS owners of the changed files, else the
    person who applied the label."""
    if configured:
        return configured
    owner, name = repo.split("/", 1)
    for path in codeowners.CODEOWNERS_PATHS:
        try:
            found: Any = (await gh.rest.repos.async_get_content(owner, name, path, ref=ref)).json()
        except RequestFailed as exc:
            if exc.response.status_code == 404:
                continue
            raise
        rules = codeowners.parse(base64.b64decode(found.get("content") or "").decode("utf-8", "replace"))
        files: Any = (await gh.rest.pulls.async_list_files(owner, name, pr, per_page=100)).json()
        owners = codeowners.owners_for(rules, [f["filename"] for f in files])
        if owners:
            return owners
        break
    return (labeled_by,) if labeled_by and not labeled_by.endswith("[bot]") else ()


async def offer(ctx: dict[str, Any], gh: GitHub, installation_id: int, repo_id: int, repo: str, issue: int,
                pr: int, effort: int | None, candidates: tuple[str, ...]) -> str:
    """A finished pull request joins the review line; returns what the critique comment says about it."""
    backlog = backlogs.of(ctx, repo_id)
    item = await backlog.get(issue) or Item(issue=issue, labeled_at=backlog.clock())
    if issue in await backlog.ready():  # already out for review (a revision was critiqued): it stays out
        await backlog.move(issue, ItemState.AWAITING, pr=pr, effort=effort, reason="")
        return " Ready for review."
    if item.state is ItemState.SNOOZED:
        await backlog.move(issue, ItemState.HELD, pr=pr, effort=effort,
                           extra={**item.extra, "candidates": list(candidates)})
        return " It is snoozed, so it stays a draft until it wakes."
    await backlog.hold(Item(issue=issue, pr=pr, effort=effort, labeled_at=item.labeled_at, title=item.title,
                            extra={**item.extra, "candidates": list(candidates)}))
    released = await release(ctx, gh, installation_id, repo_id, repo)
    if issue in released:
        reviewers = (await backlog.get(issue) or item).reviewers
        return " Ready for review" + (f"; review requested from {_mentionless(reviewers)}." if reviewers else ".")
    limits = await backlog.limits()
    held = await backlog.get(issue)
    busy = held.extra.get(HELD_BY) if held is not None else None
    if busy:
        return (f" It stays a draft: {at_cap(busy, limits.max_awaiting_review)}. When one of those is reviewed, "
                "Mull marks it ready and requests the review.")
    return (f" The review queue is full ({limits.max_awaiting_review} Mull pull requests await review): it stays "
            "a draft until a slot frees, then Mull marks it ready and requests the review.")


async def release(ctx: dict[str, Any], gh: GitHub, installation_id: int, repo_id: int, repo: str) -> list[int]:
    """Take held pull requests out of draft while review slots are free; the issues released."""
    redis = ctx["redis"]
    backlog = backlogs.of(ctx, repo_id)
    released: list[int] = []

    def pull_url(other_repo: str, pr: int) -> str:
        return f"{html_base(ctx['settings'], other_repo)}/pull/{pr}"

    async with redis.lock(f"{keys.PREFIX}lock:release:{repo_id}", timeout=120, blocking_timeout=120):
        limits = await backlog.limits()
        slots = limits.max_awaiting_review - len(await backlog.ready())
        for issue in await backlog.held():
            item = await backlog.get(issue)
            if item is None or item.pr is None:
                await backlog.leave_review(issue, installation_id)
                continue
            if item.state is ItemState.SNOOZED:
                continue
            if slots <= 0:  # the repository's own review queue is full: that is why it waits
                await _held_by(backlog, item, None)
                continue
            candidates = tuple(item.extra.get("candidates") or ())
            chosen = await choose_reviewer(redis, installation_id, candidates, limits.max_awaiting_review)
            if chosen is None:  # every candidate has as many Mull PRs waiting as the cap allows, here or elsewhere
                await _held_by(backlog, item, await busy_reviewers(
                    redis, installation_id, [c for c in candidates if "/" not in c], pull_url))
                continue
            if not await _out_of_draft(ctx, gh, repo, item.pr):
                await backlog.forget(issue)
                continue
            if await request_review(gh, repo, item.pr, chosen, ctx["log"]):
                await count(redis, "github", "review_request")
            await backlog.release_to(issue, installation_id, tuple(u for u in chosen if "/" not in u))
            await stats.awaiting_review(redis, repo, item.pr, True)
            ctx["log"].info("released for review", repo=repo, pr=item.pr, reviewers=list(chosen))
            released.append(issue)
            slots -= 1
    return released


async def _held_by(backlog: backlogs.Backlog, item: Item, busy: list[dict[str, Any]] | None) -> None:
    """Remember why a held pull request waits (None: the repository's queue is full), when that changed."""
    if item.extra.get(HELD_BY) == busy:
        return
    extra = {k: v for k, v in item.extra.items() if k != HELD_BY}
    await backlog.put(replace(item, extra={**extra, HELD_BY: busy} if busy is not None else extra))


async def choose_reviewer(redis: Any, installation_id: int, candidates: tuple[str, ...],
                          cap: int) -> tuple[str, ...] | None:
    """The least busy candidate under the per-reviewer cap (teams ride along, uncapped); () when there are no
    candidates; None when every person among them is at the cap."""
    users = [c for c in candidates if "/" not in c]
    teams = tuple(c for c in candidates if "/" in c)
    if not users:
        return teams
    loads = [(await reviewer_load(redis, installation_id, login), n, login) for n, login in enumerate(users)]
    free = sorted(entry for entry in loads if entry[0] < cap)
    if not free:
        return None
    return (free[0][2], *teams)


async def _out_of_draft(ctx: dict[str, Any], gh: GitHub, repo: str, pr: int) -> bool:
    owner, name = repo.split("/", 1)
    pull: Any = (await gh.rest.pulls.async_get(owner, name, pr)).json()
    if pull.get("state") != "open":
        return False
    await readiness.mark_ready(gh, pull)
    await gh.rest.issues.async_add_labels(owner, name, pr, labels=[AWAITING_LABEL])
    return True


async def request_review(gh: GitHub, repo: str, pr: int, reviewers: tuple[str, ...], log: Any) -> bool:
    """One review request, at release; False when there was no one to ask or GitHub refused them (422: not a
    collaborator, say) - the PR goes out all the same."""
    users, teams = codeowners.split_reviewers(reviewers)
    if not users and not teams:
        return False
    owner, name = repo.split("/", 1)
    try:
        await gh.rest.pulls.async_request_reviewers(owner, name, pr, reviewers=users, team_reviewers=teams)
    except RequestFailed as exc:
        if exc.response.status_code != 422:
            raise
        log.warning("review request refused", repo=repo, pr=pr, reviewers=list(reviewers), error=str(exc)[:200])
        return False
    return True


async def free_slot(ctx: dict[str, Any], gh: GitHub, installation_id: int, repo_id: int, repo: str, issue: int,
                    pr: int, why: str) -> list[int]:
    """A PR left the review queue (merged, closed, back to draft, snoozed): release the next ones."""
    backlog = backlogs.of(ctx, repo_id)
    await backlog.leave_review(issue, installation_id)
    await stats.awaiting_review(ctx["redis"], repo, pr, False)
    owner, name = repo.split("/", 1)
    if why in ("draft", "snoozed"):
        await labels.remove(gh, owner, name, pr, AWAITING_LABEL)
    ctx["log"].info("review slot freed", repo=repo, pr=pr, why=why)
    released = await release(ctx, gh, installation_id, repo_id, repo)
    await _release_elsewhere(ctx, installation_id, repo_id)
    return released


async def _release_elsewhere(ctx: dict[str, Any], installation_id: int, freed_repo_id: int) -> None:
    """Its reviewer may now have room for a pull request held in another repo of the installation."""
    for repo_id, owner_installation, repo in await backlogs.known_repos(ctx["redis"]):
        if owner_installation != installation_id or repo_id == freed_repo_id:
            continue
        if not await backlogs.of(ctx, repo_id).held():
            continue
        other = ctx["github"].installation(installation_id, repo_id)
        async with other:
            if await release(ctx, other, installation_id, repo_id, repo):
                await touch(ctx, installation_id, repo_id, repo)


def _mentionless(reviewers: tuple[str, ...]) -> str:
    """Names without pinging again: the review request itself is the notification."""
    return ", ".join(f"`{r}`" for r in reviewers)

