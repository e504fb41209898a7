"""Releasing finished Mull pull requests for review at the pace people review them.

A finished PR (critique passed or its fix rounds ran out, checks green) is *offered*: it joins the held
drafts in release order. ``release`` then takes held PRs out of draft (each brought up to date with its base
first: ``worker.backlog.freshen``) while the repo has fewer than
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
from bot.jobs import RepoRef
from worker import lifecycle
from worker.backlog import freshen, readiness
from worker.backlog import store as backlogs
from worker.backlog.reviewer_cap import HELD_BY, at_cap, busy_reviewers
from worker.backlog.state import Item, ItemState
from worker.backlog.store import reviewer_load
from worker.github import codeowners
from worker.jobs.lease_lock import lease_lock
from worker.jobs.services import Services
from worker.lifecycle import IssueLifecycle, Stage
from worker.ops import stats
from worker.views import labels
from worker.views.needs_you import count, html_base

AWAITING_LABEL = "mull:awaiting-review"
RELEASE_LOCK_WAIT_S = 120


async def reviewer_candidates(gh: GitHub, repo: RepoRef, pr: int, configured: tuple[str, ...], labeled_by: str,
                              ref: str) -> tuple[str, ...]:
    """Who may review: ``reviewers:`` from the config, else CODEOWNERS owners of the changed files, else the
    person who applied the label."""
    if configured:
        return configured
    owner, name = repo.owner, repo.name
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


async def offer(issue_run: IssueLifecycle, pr: int, effort: int | None, candidates: tuple[str, ...]) -> str:
    """A finished pull request joins the review line; returns what the critique comment says about it."""
    backlog, issue = issue_run.backlog, issue_run.issue
    item = await backlog.get(issue) or Item(issue=issue, labeled_at=backlog.clock())
    if issue in await backlog.ready():  # already out for review (a revision was critiqued): it stays out
        await issue_run.move(Stage.AWAITING, yield_to_run=True, pr=pr, effort=effort, reason="")
        return " Ready for review."
    await issue_run.move(Stage.HELD, yield_to_run=True, pr=pr, effort=effort,
                         extra={**item.extra, "candidates": list(candidates)})
    if item.state is ItemState.SNOOZED:
        return " It is snoozed, so it stays a draft until it wakes."
    released = await release(issue_run.svc, issue_run.gh, issue_run.repo)
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


async def release(svc: Services, gh: GitHub, repo: RepoRef) -> list[int]:
    """Take held pull requests out of draft while review slots are free; the issues released."""
    redis = svc.redis
    installation_id, repo_id = repo.installation_id, repo.repo_id
    backlog = backlogs.of(svc, repo_id)
    released: list[int] = []

    def pull_url(other_repo: str, pr: int) -> str:
        return f"{html_base(svc.settings, other_repo)}/pull/{pr}"

    async with lease_lock(redis, keys.release_lock(repo_id), lease=svc.settings.worker_heartbeat,
                          wait=RELEASE_LOCK_WAIT_S, log=svc.log):
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
            issue_run = lifecycle.of(svc, gh, repo, issue, (await svc.github.identity(gh)).login)
            if not await freshen.ready_for_review(svc, gh, repo, issue_run, item.pr):
                continue  # a revision brings it up to date with its base first, or that failed: it stays a draft
            if not await _out_of_draft(svc, gh, repo, item.pr):  # closed meanwhile, its webhook not yet here
                await issue_run.move(Stage.DONE)
                continue
            if await request_review(gh, repo, item.pr, chosen, svc.log):
                await count(redis, "github", "review_request")
            await issue_run.move(Stage.AWAITING, reviewers=tuple(u for u in chosen if "/" not in u))
            await stats.awaiting_review(redis, repo.full_name, item.pr, True)
            svc.log.info("released for review", repo=repo.full_name, pr=item.pr, reviewers=list(chosen))
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


async def _out_of_draft(svc: Services, gh: GitHub, repo: RepoRef, pr: int) -> bool:
    owner, name = repo.owner, repo.name
    pull: Any = (await gh.rest.pulls.async_get(owner, name, pr)).json()
    if pull.get("state") != "open":
        return False
    await readiness.mark_ready(gh, pull)
    await gh.rest.issues.async_add_labels(owner, name, pr, labels=[AWAITING_LABEL])
    return True


async def request_review(gh: GitHub, repo: RepoRef, pr: int, reviewers: tuple[str, ...], log: Any) -> bool:
    """One review request, at release; False when there was no one to ask or GitHub refused them (422: not a
    collaborator, say) - the PR goes out all the same."""
    users, teams = codeowners.split_reviewers(reviewers)
    if not users and not teams:
        return False
    owner, name = repo.owner, repo.name
    try:
        await gh.rest.pulls.async_request_reviewers(owner, name, pr, reviewers=users, team_reviewers=teams)
    except RequestFailed as exc:
        if exc.response.status_code != 422:
            raise
        log.warning("review request refused", repo=repo.full_name, pr=pr, reviewers=list(reviewers),
                    error=str(exc)[:200])
        return False
    return True


async def free_slot(svc: Services, gh: GitHub, repo: RepoRef, issue: int, pr: int, why: str) -> list[int]:
    """A PR left the review queue (merged, closed, back to draft, snoozed): release the next ones."""
    backlog = backlogs.of(svc, repo.repo_id)
    await backlog.leave_review(issue, repo.installation_id)
    await stats.awaiting_review(svc.redis, repo.full_name, pr, False)
    if why in ("draft", "snoozed"):
        await labels.remove(gh, repo, pr, AWAITING_LABEL)
    svc.log.info("review slot freed", repo=repo.full_name, pr=pr, why=why)
    released = await release(svc, gh, repo)
    await _release_elsewhere(svc, repo)
    return released


async def _release_elsewhere(svc: Services, freed: RepoRef) -> None:
    """Its reviewer may now have room for a pull request held in another repo of the installation."""
    for repo in await backlogs.known_refs(svc.redis):
        if repo.installation_id != freed.installation_id or repo.repo_id == freed.repo_id:
            continue
        if not await backlogs.of(svc, repo.repo_id).held():
            continue
        other = svc.github.installation(repo.installation_id, repo.repo_id)
        async with other:
            await release(svc, other, repo)


def _mentionless(reviewers: tuple[str, ...]) -> str:
    """Names without pinging again: the review request itself is the notification."""
    return ", ".join(f"`{r}`" for r in reviewers)

