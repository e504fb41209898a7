"""Mull's state labels on issues: the part of its state anyone can see and filter on in GitHub."""

from __future__ import annotations

from githubkit import GitHub
from githubkit.exception import RequestFailed

from bot.jobs import RepoRef

QUEUED = "mull:queued"
WORKING = "mull:working"
WAITING = "mull:waiting"  # the receiver keeps plain comments on issues wearing it: they may be answers
STATE_LABELS = (QUEUED, WORKING, WAITING)


async def remove(gh: GitHub, repo: RepoRef, issue: int, label: str) -> None:
    try:
        await gh.rest.issues.async_remove_label(repo.owner, repo.name, issue, label)
    except RequestFailed as exc:
        if exc.response.status_code != 404:  # not on the issue: nothing to do
            raise


async def move(gh: GitHub, repo: RepoRef, issue: int, to: str | None) -> None:
    """Leave exactly ``to`` (or none) of Mull's state labels on the issue."""
    owner, name = repo.owner, repo.name
    for label in STATE_LABELS:
        if label == to:
            continue
        try:
            await gh.rest.issues.async_remove_label(owner, name, issue, label)
        except RequestFailed as exc:
            if exc.response.status_code != 404:  # not on the issue: nothing to do
                raise
    if to:
        await gh.rest.issues.async_add_labels(owner, name, issue, labels=[to])
