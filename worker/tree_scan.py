"""Looking at an agent's tree without trusting it.

Everything in the tree was written by the agent or by code it ran, so the walk only ever ``lstat``s:
directories are entered through ``O_NOFOLLOW`` descriptors, symbolic links are read as links (their
targets are data, never followed), FIFOs, sockets and devices are never opened (opening a FIFO blocks),
and only regular files are opened, with ``O_NOFOLLOW``. Entries named like git metadata (``.git`` in any
case, and the names Windows and macOS treat as ``.git``) are neither entered nor taken at any depth:
they belong to the agent's own disposable repository or are an attempt to plant git metadata.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

FILE, EXECUTABLE, LINK, GITLINK = b"100644", b"100755", b"120000", b"160000"
IGNORE_FILE = b".gitignore"
MAX_IGNORE_BYTES = 1 << 20  # a larger .gitignore is not read: its rules do not apply
MAX_DEPTH = 256  # git refuses deeper trees on some platforms; so does Mull

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class TreeTooDeep(Exception):
    """The tree nests directories deeper than MAX_DEPTH; the message names where."""


def is_git_metadata(name: bytes) -> bool:
    """``.git`` as any filesystem git supports would see it (``.GIT``, ``.git.``, ``git~1``, ``.git::$x``)."""
    lowered = name.lower()
    return lowered.rstrip(b" .") in (b".git", b"git~1") or lowered.startswith(b".git:")


@dataclass(frozen=True)
class Seen:
    mode: bytes  # FILE, EXECUTABLE or LINK
    link: bytes | None = None  # the target of a symbolic link, as stored


@dataclass(frozen=True)
class Survey:
    entries: Mapping[bytes, Seen]  # every regular file and symbolic link, by slash-separated path
    ignore_files: Mapping[bytes, bytes]  # directory (b"" for the root) → the contents of its .gitignore


def survey(tree: Path, skip: frozenset[bytes]) -> Survey:
    """The regular files and links under ``tree``; paths in ``skip`` (gitlinks) are neither entered nor taken."""
    entries: dict[bytes, Seen] = {}
    ignores: dict[bytes, bytes] = {}
    root = os.open(tree, _DIR_FLAGS)
    try:
        _survey_dir(root, b"", skip, entries, ignores)
    finally:
        os.close(root)
    return Survey(entries=entries, ignore_files=ignores)


def _survey_dir(fd: int, prefix: bytes, skip: frozenset[bytes], entries: dict[bytes, Seen],
                ignores: dict[bytes, bytes]) -> None:
    if prefix.count(b"/") >= MAX_DEPTH:
        raise TreeTooDeep(f"{os.fsdecode(prefix)} is nested more than {MAX_DEPTH} directories deep; "
                          "flatten it so that git can store it")
    with os.scandir(fd) as listing:
        items = list(listing)
    for item in items:
        name = os.fsencode(item.name)
        path = prefix + name
        if is_git_metadata(name) or path in skip:
            continue
        mode = item.stat(follow_symlinks=False).st_mode
        if stat.S_ISDIR(mode):
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError:
                continue  # replaced or made unreadable meanwhile: nothing to take from it
            try:
                _survey_dir(child, path + b"/", skip, entries, ignores)
            finally:
                os.close(child)
        elif stat.S_ISLNK(mode):
            entries[path] = Seen(LINK, os.readlink(name, dir_fd=fd))
        elif stat.S_ISREG(mode):
            entries[path] = Seen(EXECUTABLE if mode & stat.S_IXUSR else FILE)
            if name == IGNORE_FILE:
                rules = _read_at(fd, name, MAX_IGNORE_BYTES)
                if rules is not None:
                    ignores[prefix.rstrip(b"/")] = rules
        # FIFOs, sockets and devices: never opened, never committed.


def _read_at(dir_fd: int, name: bytes, limit: int | None = None) -> bytes | None:
    """The contents of the regular file ``name`` in ``dir_fd``; None if it is anything else (or over ``limit``)."""
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode) or (limit is not None and info.st_size > limit):
            return None
        return file.read()


def read_file(tree: Path, path: bytes) -> bytes | None:
    """The contents of the regular file at ``path`` under ``tree``, reached without following any link.

    None when something on the way is no longer a directory, or the file is no longer a regular file.
    """
    *folders, name = path.split(b"/")
    fd = os.open(tree, _DIR_FLAGS)
    try:
        for folder in folders:
            try:
                child = os.open(folder, _DIR_FLAGS, dir_fd=fd)
            except OSError:
                return None
            os.close(fd)
            fd = child
        return _read_at(fd, name)
    finally:
        os.close(fd)
