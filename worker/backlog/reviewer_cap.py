"""Why a finished pull request stays a draft when its repository has room: every reviewer it could go to already
has ``max_awaiting_review`` Mull pull requests awaiting their review, perhaps all in other repositories.

Saying "N Mull pull requests already await review" there reads as false (none await in this repository), so
the hold names who is at their cap and links the pull requests awaiting them, wherever those are. ``release``
records it on the held item (``Item.extra["held_by"]``); the status comment and the critique comment say it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from worker.backlog.state import HELD_BY
from worker.backlog.store import awaiting_reviewer

__all__ = ["HELD_BY", "at_cap", "busy_reviewers"]


async def busy_reviewers(redis: Any, installation_id: int, logins: Sequence[str],
                         pull_url: Callable[[str, int], str]) -> list[dict[str, Any]]:
    """Each of ``logins`` with the Mull pull requests awaiting their review across the installation."""
    return [{"login": login, "prs": [[repo, pr, pull_url(repo, pr)]
                                     for repo, pr in await awaiting_reviewer(redis, installation_id, login)]}
            for login in logins]


def at_cap(busy: Sequence[dict[str, Any]], cap: int) -> str:
    """``its reviewer `rita` already has 2 Mull pull requests awaiting their review (links), …``, for one person
    or several; logins in code spans, so the comment notifies no one."""
    def prs(entry: dict[str, Any]) -> str:
        return ", ".join(f"[{repo}#{pr}]({url})" for repo, pr, url in entry["prs"]) or "none found now"

    if len(busy) == 1:
        entry = busy[0]
        count = len(entry["prs"]) or cap
        return (f"its reviewer `{entry['login']}` already has {count} Mull pull request{'' if count == 1 else 's'} "
                f"awaiting their review ({prs(entry)}), the most one person is given at a time")
    people = "; ".join(f"`{entry['login']}`: {prs(entry)}" for entry in busy)
    return (f"each of its possible reviewers already has {cap} Mull pull request{'' if cap == 1 else 's'} awaiting "
            f"their review, the most one person is given at a time ({people})")
