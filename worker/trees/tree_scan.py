"""Looking at an agent's tree without trusting it.

Everything in the tree was written by the agent or by code it ran, so the walk only ever ``lstat``s:
directories are entered through ``O_NOFOLLOW`` descriptors, symbolic links are read as links (their
targets are data, never followed), FIFOs, sockets and devices are never opened (opening a FIFO blocks),
and only regular files are opened, with ``O_NOFOLLOW``, sized by ``fstat`` before they are read
(``worker/trees/regular_file.py``): a sparse file's size costs the agent nothing, reading it would cost the worker
all of it. Entries named like git metadata (``.git`` in any case, and the names Windows and macOS treat as
``.git``) are neither entered nor taken at any depth: they belong to the agent's own disposable repository
or are an attempt to plant git metadata.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from worker.trees.regular_file import NotRegular, TooLarge, read_regular

FILE, EXECUTABLE, LINK, GITLINK = b"100644", b"100755", b"120000", b"160000"
IGNORE_FILE = b".gitignore"
MAX_IGNORE_BYTES = 1 << 20  # a larger .gitignore is not read: its rules do not apply
MAX_IGNORE_TOTAL = 8 << 20  # .gitignore bytes kept per tree; the rules of those found beyond do not apply
MAX_DEPTH = 256  # git refuses deeper trees on some platforms; so does Mull

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class TreeTooDeep(Exception):
    """The tree nests directories deeper than MAX_DEPTH; the message names where."""


def blob_id(content: bytes, algorithm: str) -> str:
    """The object id git gives ``content`` as a blob (``algorithm``: sha1, or sha256 for such repositories)."""
    digest = hashlib.new(algorithm)
    digest.update(b"blob %d\0" % len(content))
    digest.update(content)
    return digest.hexdigest()


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
    found = _Found()
    root = os.open(tree, _DIR_FLAGS)
    try:
        _survey_dir(root, b"", skip, found)
    finally:
        os.close(root)
    return Survey(entries=found.entries, ignore_files=found.ignores)


@dataclass
class _Found:
    entries: dict[bytes, Seen] = field(default_factory=dict)
    ignores: dict[bytes, bytes] = field(default_factory=dict)
    ignore_bytes: int = 0

    def add_rules(self, fd: int, name: bytes, folder: bytes) -> None:
        """Keep the .gitignore ``name`` of ``fd`` unless it, or all kept so far with it, are over their limits."""
        try:
            rules = _read_at(fd, name, min(MAX_IGNORE_BYTES, MAX_IGNORE_TOTAL - self.ignore_bytes))
        except TooLarge:
            return
        if rules is not None:
            self.ignores[folder] = rules
            self.ignore_bytes += len(rules)


def _survey_dir(fd: int, prefix: bytes, skip: frozenset[bytes], found: _Found) -> None:
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
                _survey_dir(child, path + b"/", skip, found)
            finally:
                os.close(child)
        elif stat.S_ISLNK(mode):
            found.entries[path] = Seen(LINK, os.readlink(name, dir_fd=fd))
        elif stat.S_ISREG(mode):
            found.entries[path] = Seen(EXECUTABLE if mode & stat.S_IXUSR else FILE)
            if name == IGNORE_FILE:
                found.add_rules(fd, name, prefix.rstrip(b"/"))
        # FIFOs, sockets and devices: never opened, never committed.


def _read_at(dir_fd: int, name: bytes, limit: int) -> bytes | None:
    """The contents of the regular file ``name`` in ``dir_fd``; None if it is anything else (or gone).

    TooLarge, from its size before anything is read, when it is over ``limit``.
    """
    try:
        return read_regular(name, limit, dir_fd=dir_fd)
    except (NotRegular, OSError):
        return None


def read_file(tree: Path, path: bytes, limit: int) -> bytes | None:
    """The contents of the regular file at ``path`` under ``tree``, reached without following any link.

    None when something on the way is no longer a directory, or the file is no longer a regular file;
    TooLarge when it is over ``limit`` bytes (known from its size: nothing is read then).
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
        return _read_at(fd, name, limit)
    finally:
        os.close(fd)
