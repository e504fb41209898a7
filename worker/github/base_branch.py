"""Which branch an issue's run starts from and its pull request targets: ``/mull base <branch>`` or a
``base: <branch>`` line in the issue's own body; the repository's default branch otherwise.

The name comes from issue text, so it is hostile: it is checked against git's rules for ref names
(``git check-ref-format``) before anything else sees it, so it can never reach git as an option (a leading
``-``), walk out of ``refs/`` (``..``) or smuggle a control character into a command line or a reply.
"""

from __future__ import annotations

import re
from typing import Any

from githubkit import GitHub
from githubkit.exception import RequestFailed

from bot.jobs import RepoRef

MAX_LENGTH = 200
_BASE_LINE = re.compile(r"^[ \t]{0,3}base:[ \t]*(.*?)[ \t]*$", re.IGNORECASE)
_FENCE = re.compile(r"^[ \t]{0,3}(```|~~~)")
_FORBIDDEN = frozenset(" ~^:?*[\\")
_SHOWN = 40


class BadBase(ValueError):
    """A base branch that cannot be used; the message says what is wrong and how to fix it."""


def shown(name: str) -> str:
    """Someone's branch name, safe inside a code span of a reply."""
    text = "".join(c if c.isprintable() else "?" for c in name).replace("`", "'")
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def ref_name_error(name: str) -> str | None:
    """Why ``name`` is not a usable branch name (git's ``check-ref-format --branch`` rules), or None."""
    if not name:
        return "no branch name was given"
    if len(name) > MAX_LENGTH:
        return f"a branch name is at most {MAX_LENGTH} characters"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "a branch name cannot hold control characters"
    if any(c in _FORBIDDEN for c in name):
        return "a branch name cannot hold spaces or any of ~ ^ : ? * [ \\"
    if name.startswith("-"):
        return "a branch name cannot start with `-`"
    if ".." in name or "@{" in name or name == "@":
        return "a branch name cannot hold `..` or `@{` or be `@`"
    if name.startswith("/") or name.endswith("/") or "//" in name or name.endswith("."):
        return "a branch name cannot start or end with `/`, hold `//` or end with `.`"
    for part in name.split("/"):
        if part.startswith(".") or part.endswith(".lock"):
            return "no part of a branch name may start with `.` or end with `.lock`"
    if name.startswith("refs/") or name == "HEAD":
        return "give the branch's short name (`dev`), not `HEAD` or a full ref"
    return None


COMMAND_FIX = "write the name of an existing branch, like `/mull base dev`"
BODY_FIX = ("edit the issue's `base:` line to name an existing branch (or remove it to use the default branch), "
            "then add the label again")


def checked(name: str, fix: str = COMMAND_FIX) -> str:
    """``name`` when it is a valid branch name; BadBase naming the rule it breaks and ``fix`` otherwise."""
    error = ref_name_error(name)
    if error is not None:
        raise BadBase(f"`{shown(name)}` is not a valid branch name: {error}. To fix it, {fix}.")
    return name


def from_body(body: str | None) -> str | None:
    """The branch of the first ``base: <branch>`` line of an issue body outside code blocks; None without one.
    The value is returned as written (possibly invalid): the caller checks it and says what is wrong."""
    fenced = False
    for line in (body or "").replace("\r\n", "\n").split("\n"):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            continue
        found = _BASE_LINE.match(line)
        if found:
            return found.group(1).strip("`")
    return None


async def exists(gh: GitHub, repo: RepoRef, branch: str) -> bool:
    """Whether the repository has ``branch`` (a checked name) now."""
    try:
        found: Any = (await gh.rest.repos.async_get_branch(repo.owner, repo.name, branch)).json()
    except RequestFailed as exc:
        if exc.response.status_code == 404:
            return False
        raise
    return found.get("name") == branch


async def usable(gh: GitHub, repo: RepoRef, name: str, fix: str = COMMAND_FIX) -> str:
    """``name`` when it is a valid name of an existing branch; BadBase with the reply otherwise."""
    branch = checked(name, fix)
    if not await exists(gh, repo, branch):
        raise BadBase(f"the branch `{shown(branch)}` does not exist in {repo.full_name}. Push it first, or {fix}.")
    return branch
