"""Which pull requests are Mull's: the one test every handler and job asks before acting on a pull request.

A branch name is not enough: anyone can open a pull request from a fork whose branch is called
``mull/issue-7``, or push such a branch and open the pull request themselves. Acting on it would critique,
revise (run the agent on a stranger's code), release or command it as if Mull had written it. So a pull
request is Mull's only when all three hold: its head is in the base repository itself (a missing head
repository means a deleted fork), its branch is ``mull/issue-N``, and Mull's bot opened it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.jobs import issue_of_branch


def mull_issue(pull: Mapping[str, Any], bot_login: str) -> int | None:
    """The issue a Mull pull request works on; None for any pull request Mull did not open on its own branch."""
    head = pull.get("head") or {}
    head_repo = head.get("repo") or {}
    base_repo = (pull.get("base") or {}).get("repo") or {}
    if head_repo.get("id") is None or head_repo.get("id") != base_repo.get("id"):
        return None
    if not bot_login or (pull.get("user") or {}).get("login") != bot_login:
        return None
    return issue_of_branch(head.get("ref") or "")
