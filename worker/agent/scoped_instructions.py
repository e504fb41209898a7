"""Path-scoped instructions: ``.github/instructions/*.instructions.md``, in GitHub's format.

Each file starts with front matter whose ``applyTo`` holds comma-separated globs (``**/*.py,docs/**``); the rest
is instructions for agents working on files those globs match. Mull includes a file when any of its globs
matches any file of the tree the agent starts from (the base commit's files: the prompt is built before setup
runs), and says the scope in the prompt. The files are the repository's, as hostile as any: the folder and the
files are opened without following links, only regular files are read, each up to a size cap; a file whose
front matter is missing or bad is skipped with a logged reason, never an error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
import yaml

from worker.trees.regular_file import NotRegular, opened, read_upto
from worker.trees.tree_scan import is_git_metadata

FOLDER = ".github/instructions"
SUFFIX = ".instructions.md"
MAX_FILES = 50  # instruction files looked at; more are skipped, saying so
MAX_TREE_FILES = 200_000  # files of the tree matched against the globs
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_BRACE_COMMA = re.compile(r",(?![^{]*})")  # a comma between globs, not one inside {a,b}
_FRONT = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.S)


class BadFrontMatter(ValueError):
    """The file's front matter is missing or has no usable ``applyTo``; the message says what is wrong."""


@dataclass(frozen=True)
class Scoped:
    name: str  # path in the repository
    globs: tuple[str, ...]
    text: str  # the instructions, front matter removed


def parse(text: str) -> tuple[tuple[str, ...], str]:
    """The globs of ``applyTo`` and the body; BadFrontMatter when there is no usable front matter."""
    found = _FRONT.match(text)
    if not found:
        raise BadFrontMatter("no front matter: start the file with '---', an `applyTo:` line and '---'")
    try:
        data: Any = yaml.safe_load(found.group(1))
    except yaml.YAMLError as exc:
        raise BadFrontMatter(f"front matter is not valid YAML ({' '.join(str(exc).split())[:200]})") from None
    if not isinstance(data, dict) or "applyTo" not in data:
        raise BadFrontMatter("front matter has no `applyTo:` key")
    value = data["applyTo"]
    if not isinstance(value, str):
        raise BadFrontMatter("`applyTo` must be a string of comma-separated globs, such as \"**/*.py,docs/**\"")
    globs = tuple(part.strip().removeprefix("/") for part in _BRACE_COMMA.split(value) if part.strip())
    if not globs:
        raise BadFrontMatter("`applyTo` is empty")
    if any(char in glob for glob in globs for char in "\r\n\0"):
        raise BadFrontMatter("`applyTo` globs must be on one line")
    return globs, text[found.end():]


def glob_regex(glob: str) -> re.Pattern[str]:
    """A glob as GitHub reads one against a path from the repository root: ``**`` spans folders, ``*`` and
    ``?`` do not; ``{a,b}`` alternates."""
    out, i = [], 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        elif glob[i] == "{" and (close := glob.find("}", i)) > i:
            out.append("(?:" + "|".join(re.escape(part) for part in glob[i + 1:close].split(",")) + ")")
            i = close + 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def matching(globs: Iterable[str], files: Iterable[str]) -> bool:
    patterns = [glob_regex(glob) for glob in globs]
    return any(pattern.match(path) for path in files for pattern in patterns)


def tree_files(tree: Path) -> list[str]:
    """The tree's file paths (slash-separated, links not followed, git metadata left out), up to a cap."""
    found: list[str] = []
    for folder, dirs, files in os.walk(tree):
        dirs[:] = [d for d in dirs if not is_git_metadata(os.fsencode(d))]
        relative = os.path.relpath(folder, tree)
        for name in files:
            found.append(name if relative == "." else f"{relative}/{name}".replace(os.sep, "/"))
            if len(found) >= MAX_TREE_FILES:
                return found
    return found


def read_scoped(tree: Path, limit: int, log: Any = None) -> Iterator[Scoped]:
    """The tree's path-scoped instruction files that apply to it, in name order."""
    log = log or structlog.get_logger(__name__)
    folder = _open_folder(tree)
    if folder is None:
        return
    try:
        names = sorted(name for name in os.listdir(folder) if name.endswith(SUFFIX))
        files: list[str] | None = None
        for number, name in enumerate(names):
            shown = f"{FOLDER}/{name}"
            if number >= MAX_FILES:
                log.warning("instruction file skipped", file=shown, reason=f"more than {MAX_FILES} files")
                continue
            try:
                with opened(name, dir_fd=folder) as (fd, info):
                    data = read_upto(fd, limit + 1)
                globs, body = parse(data[:limit].decode("utf-8", errors="replace"))
            except (NotRegular, OSError, BadFrontMatter) as exc:
                log.warning("instruction file skipped", file=shown, reason=str(exc))
                continue
            if files is None:
                files = tree_files(tree)
            if not matching(globs, files):
                log.info("instruction file does not apply", file=shown, apply_to=",".join(globs))
                continue
            if len(data) > limit or info.st_size > limit:
                body += f"\n[truncated: {max(info.st_size, len(data)) - limit} more bytes not shown]"
            yield Scoped(shown, globs, body)
    finally:
        os.close(folder)


def _open_folder(tree: Path) -> int | None:
    """``.github/instructions`` under ``tree``, each step opened without following a link; None if absent."""
    try:
        fd = os.open(tree, _DIR_FLAGS)
    except OSError:
        return None
    for part in FOLDER.split("/"):
        try:
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
        except OSError:
            os.close(fd)
            return None
        os.close(fd)
        fd = child
    return fd
