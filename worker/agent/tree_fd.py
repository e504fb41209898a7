"""Reaching paths of an agent's tree through directory descriptors, never by a name looked up from the root.

The builtin agent's file tools run in the worker, which can read Mull's ``.env``, the App key and the
mirrors; the tree belongs to the agent and to whatever its commands leave running. Checking a path
(``Path.resolve``) and then opening it by name leaves a moment in which a directory on the way can become a
link to anywhere. So a path is walked one component at a time from a descriptor of the root: each directory
is opened ``O_DIRECTORY | O_NOFOLLOW`` relative to the one before, ``..`` returns to a descriptor already
held (never above the root), and a link met on the way is read and its target walked the same way, inside
the root or refused. Whatever happens to the names meanwhile, everything opened is inside the tree. Names
git treats as ``.git`` are refused at every step, links included.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from worker.trees.tree_scan import is_git_metadata

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_LINKS = 40  # links followed in one lookup, as the kernel allows
MAX_DEPTH = 256  # directories below a walk's top that are still entered


class Outside(Exception):
    """The path, or a link on its way, leads outside the root."""


class InGit(Exception):
    """The path, or a link on its way, goes through git metadata."""


class LinkLoop(Exception):
    """More than MAX_LINKS links on the way: a loop, or close enough."""


@dataclass(frozen=True)
class Spot:
    """Where a path leads: the entry ``name`` of the directory ``parent`` (a descriptor held by the lookup)."""

    parent: int
    name: str  # "." when the path is the root itself
    parts: tuple[str, ...]  # its path under the root, links resolved
    mode: int | None  # as ``lstat`` saw it (never a link); None when nothing is there yet

    @property
    def relative(self) -> str:
        return "/".join(self.parts) or "."


@contextmanager
def locate(root: Path, path: str, *, make_dirs: bool = False) -> Iterator[Spot]:
    """Walk ``path`` (relative to ``root``, or absolute inside it) down to its last component.

    Directories on the way must exist (FileNotFoundError names the first missing one) unless ``make_dirs``,
    which creates them one by one relative to their parent. The descriptors stay open until the block ends.
    """
    held = [os.open(root, DIR_FLAGS)]
    try:
        yield _walk(root, held, _parts(root, path), make_dirs)
    finally:
        for fd in held:
            os.close(fd)


def _parts(root: Path, path: str) -> list[str]:
    given = PurePosixPath(path or ".")
    if given.is_absolute():
        if not given.is_relative_to(root):
            raise Outside(path)
        given = given.relative_to(root)
    return list(given.parts)


def _walk(root: Path, held: list[int], parts: list[str], make_dirs: bool) -> Spot:
    names: list[str] = []  # the directories held[1:] are, by name
    pending = parts[::-1]  # a stack: the next component last
    links = 0
    while pending:
        name = pending.pop()
        if name == "..":
            if not names:
                raise Outside(name)
            os.close(held.pop())
            names.pop()
            continue
        if is_git_metadata(os.fsencode(name)):
            raise InGit(name)
        mode = _lstat(name, held[-1])
        if mode is not None and stat.S_ISLNK(mode):
            links += 1
            if links > MAX_LINKS:
                raise LinkLoop(name)
            target = PurePosixPath(os.readlink(name, dir_fd=held[-1]))
            if target.is_absolute():
                if not target.is_relative_to(root):
                    raise Outside(str(target))
                target = target.relative_to(root)
                while names:
                    os.close(held.pop())
                    names.pop()
            pending.extend(reversed(target.parts))
            continue
        if not pending:
            return Spot(held[-1], name, (*names, name), mode)
        if mode is None and make_dirs:
            os.mkdir(name, dir_fd=held[-1])
        elif mode is None:
            raise FileNotFoundError(errno.ENOENT, "no such directory", "/".join((*names, name)))
        elif not stat.S_ISDIR(mode):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", "/".join((*names, name)))
        # O_NOFOLLOW: if the directory became a link since lstat, this fails; the link is never followed.
        held.append(os.open(name, DIR_FLAGS, dir_fd=held[-1]))
        names.append(name)
    if not names:  # the root itself ("", ".", "src/..")
        return Spot(held[0], ".", (), stat.S_IFDIR)
    os.close(held.pop())  # the path ended on a directory walked into: it is its parent's entry
    name = names.pop()
    return Spot(held[-1], name, (*names, name), _lstat(name, held[-1]))


def _lstat(name: str, dir_fd: int) -> int | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class Entry:
    """One entry met by ``walk``; ``parent`` is valid only until the walk moves on."""

    parent: int
    name: str
    parts: tuple[str, ...]
    mode: int

    @property
    def relative(self) -> str:
        return "/".join(self.parts)


def walk(top: int, parts: tuple[str, ...], enter: Callable[[Entry], bool], depth: int = 0) -> Iterator[Entry]:
    """Every entry under the directory descriptor ``top``, never following a link, git metadata left out.

    Per directory: its other entries, sorted, then each subdirectory, entered when ``enter`` says so.
    """
    found = []
    with os.scandir(top) as listing:
        for item in listing:
            if is_git_metadata(os.fsencode(item.name)):
                continue
            try:
                found.append((item.name, item.stat(follow_symlinks=False).st_mode))
            except OSError:
                continue  # gone meanwhile
    found.sort()
    folders = []
    for name, mode in found:
        entry = Entry(top, name, (*parts, name), mode)
        if stat.S_ISDIR(mode):
            folders.append(entry)
        else:
            yield entry
    for entry in folders:
        yield entry
        if depth >= MAX_DEPTH or not enter(entry):
            continue
        try:
            child = os.open(entry.name, DIR_FLAGS, dir_fd=top)
        except OSError:
            continue  # replaced or made unreadable meanwhile: nothing to see in it
        try:
            yield from walk(child, entry.parts, enter, depth + 1)
        finally:
            os.close(child)
