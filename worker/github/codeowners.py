"""Who owns the files a pull request changes, read from CODEOWNERS the way GitHub reads it, to request reviews.

GitHub uses the first of ``.github/CODEOWNERS``, ``CODEOWNERS`` and ``docs/CODEOWNERS``; the last rule that
matches a path wins, and a rule without owners leaves the path unowned. Patterns follow gitignore, minus what
GitHub does not support (``!`` negation and ``[ ]`` ranges): a line using those, or an owner that is not
``@user``, ``@org/team`` or an email, is skipped the way GitHub skips a line with an error. A ``\\#`` escape
is read as gitignore reads it (a literal ``#``), though GitHub's docs say GitHub does not honour it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

CODEOWNERS_PATHS = (".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS")

_USER = re.compile(r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})")
_TEAM = re.compile(r"@[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_TOKEN = re.compile(r"(?:\\.?|[^\s\\])+")  # whitespace separates, backslash escapes one character


@dataclass(frozen=True)
class Rule:
    """One line of CODEOWNERS: a pattern, its owners as written (``@user``, ``@org/team``, emails), its line."""

    pattern: str
    owners: tuple[str, ...]
    line: int


def parse(text: str) -> list[Rule]:
    """The rules of a CODEOWNERS file, in file order; lines that cannot be used are skipped."""
    rules = []
    for number, line in enumerate(text.splitlines(), start=1):
        tokens = _TOKEN.findall(line)
        if not tokens or tokens[0].startswith("#"):
            continue
        pattern, owners = tokens[0], []
        for token in tokens[1:]:
            if token.startswith("#"):  # a comment after the owners
                break
            owners.append(token)
        if _usable(pattern) and all(_owner(owner) for owner in owners):
            rules.append(Rule(pattern, tuple(owners), number))
    return rules


def owners_of(rules: list[Rule], path: str) -> tuple[str, ...]:
    """The owners of ``path`` (relative to the repository root): the last matching rule's, as written."""
    path = path.removeprefix("./").lstrip("/")
    for rule in reversed(rules):
        if _regex(rule.pattern).match(path):
            return rule.owners
    return ()


def owners_for(rules: list[Rule], paths: Iterable[str]) -> tuple[str, ...]:
    """Everyone owning any of ``paths``, first seen first, without ``@``; emails are left out because
    GitHub can only be asked for reviews from users and teams."""
    seen: dict[str, str] = {}
    for path in paths:
        for owner in owners_of(rules, path):
            if owner.startswith("@"):
                seen.setdefault(owner.lower(), owner[1:])
    return tuple(seen.values())


def split_reviewers(owners: Iterable[str]) -> tuple[list[str], list[str]]:
    """``owners_for``'s names as GitHub's request-reviewers call wants them: (user logins, team slugs).

    ``org/team`` becomes the slug ``team``; a team can only be requested on a repository of its own org.
    """
    users: dict[str, str] = {}
    teams: dict[str, str] = {}
    for owner in owners:
        name = owner.removeprefix("@")
        if "/" in name:
            slug = name.split("/", 1)[1]
            teams.setdefault(slug.lower(), slug)
        elif name:
            users.setdefault(name.lower(), name)
    return list(users.values()), list(teams.values())


def _owner(token: str) -> bool:
    return any(kind.fullmatch(token) for kind in (_USER, _TEAM, _EMAIL))


def _usable(pattern: str) -> bool:
    """False for what GitHub reports as an error: negation, character ranges, a dangling escape, no path."""
    unescaped = re.sub(r"\\.", "", pattern)
    return (bool(pattern.strip("/")) and not pattern.startswith("!") and not unescaped.endswith("\\")
            and "[" not in unescaped and "]" not in unescaped)


@lru_cache(maxsize=4096)
def _regex(pattern: str) -> re.Pattern[str]:
    """A gitignore pattern as a regex over a root-relative path.

    A pattern with a ``/`` at its start or middle is anchored at the root, otherwise it matches at any depth.
    One ending in ``/`` matches what is inside that directory, one ending in ``/**`` too, and one ending in
    ``/*`` only direct children (GitHub's rule); anything else matches the path itself and, when that is a
    directory, everything under it.
    """
    body = pattern.strip("/")
    anchored = "/" in body or pattern.startswith("/")
    parts = body.split("/")
    out = "^" if anchored else "^(?:.*/)?"
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            out += ".*" if last else "(?:.*/)?"
        else:
            out += _glob(part) + ("" if last else "/")
    if parts[-1] == "**":
        pass  # already everything inside
    elif pattern.endswith("/"):
        out += "/.*"
    elif parts[-1] == "*" and anchored:
        pass  # direct children only
    else:
        out += "(?:/.*)?"
    return re.compile(out + r"\Z")


def _glob(part: str) -> str:
    """One path segment: ``*`` is any run of characters but ``/``, ``?`` one of them, ``\\x`` the literal x."""
    out = ""
    index = 0
    while index < len(part):
        char = part[index]
        if char == "\\" and index + 1 < len(part):
            index += 1
            out += re.escape(part[index])
        elif char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        else:
            out += re.escape(char)
        index += 1
    return out
