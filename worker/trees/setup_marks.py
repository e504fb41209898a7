"""What a repository's setup left in a run's tree, so Mull's commit takes only what the agent changed after it.

Setup commands (``setup:`` in ``.github/mull.yml``) install dependencies and build before the agent starts: a
``.venv``, ``node_modules``, build output, a regenerated lock file. None of that is the agent's work. Right after
setup, Mull notes (``mark``):

- the *new roots*: each topmost file or directory setup created where the base commit tracks nothing (a
  ``node_modules/`` directory is one root, whatever is inside). Nothing at or under a root is ever committed,
  not even a file the agent adds there later: the commit's walk does not enter them (``worker/trees/tree_commit.py``);
- the tracked files setup changed or removed, with what setup left. At commit, such a file that still holds
  exactly that is kept as the base has it; one the agent changed again is taken as the agent left it.

The walk is as wary as the commit's (``worker/trees/tree_scan.py``): only ``lstat``, directories entered through
``O_NOFOLLOW`` descriptors, links read as links, and only the directories the base tracks are entered, so a huge
``node_modules`` costs one entry. Tracked regular files are read, size-capped, to compare them with the base.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from worker.trees.regular_file import NotRegular, TooLarge, read_regular
from worker.trees.tree_scan import EXECUTABLE, FILE, GITLINK, LINK, blob_id, is_git_metadata

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_READ = 100 * 1024 * 1024  # GitHub's limit per file: a larger tracked file is compared by the commit itself


@dataclass(frozen=True)
class Tracked:
    """A tracked path as setup left it: ``mode`` and blob ``oid``; both None when setup removed it."""

    mode: bytes | None
    oid: str | None


@dataclass(frozen=True)
class SetupMarks:
    roots: frozenset[bytes] = frozenset()  # slash-separated paths setup created outside what the base tracks
    changed: Mapping[bytes, Tracked] = field(default_factory=dict)  # tracked paths setup changed or removed

    def as_setup_left(self, path: bytes, now: Tracked) -> bool:
        """Whether the tracked ``path`` is still exactly as setup left it: then it is not the agent's change."""
        return self.changed.get(path) == now


def mark(tree: Path, base: Mapping[bytes, tuple[bytes, str]], algorithm: str) -> SetupMarks:
    """What setup changed in ``tree`` against ``base`` (path → (mode, blob oid) of the base commit)."""
    folders = {b""} | {path[:i] for path in base for i in range(len(path)) if path[i:i + 1] == b"/"}
    roots: set[bytes] = set()
    seen: set[bytes] = set()
    changed: dict[bytes, Tracked] = {}
    pending = [(os.open(tree, _DIR_FLAGS), b"")]
    try:
        while pending:
            fd, prefix = pending.pop()
            try:
                with os.scandir(fd) as listing:
                    items = [(os.fsencode(item.name), item.stat(follow_symlinks=False).st_mode) for item in listing]
                for name, mode in items:
                    path = prefix + name
                    if is_git_metadata(name):
                        continue
                    if stat.S_ISDIR(mode) and path in folders:
                        child = _open_dir(fd, name)
                        if child is not None:
                            pending.append((child, path + b"/"))
                    elif path not in base:
                        roots.add(path)
                    else:
                        seen.add(path)
                        want_mode, want_oid = base[path]
                        now = _state(fd, name, mode, algorithm)
                        if want_mode != GITLINK and now != Tracked(want_mode, want_oid):
                            changed[path] = now
            finally:
                os.close(fd)
    finally:
        for fd, _prefix in pending:
            os.close(fd)
    for path, (base_mode, _oid) in base.items():
        if path not in seen and base_mode != GITLINK:
            changed[path] = Tracked(None, None)
    return SetupMarks(roots=frozenset(roots), changed=changed)


def _open_dir(fd: int, name: bytes) -> int | None:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=fd)
    except OSError:
        return None  # replaced or made unreadable meanwhile


def _state(dir_fd: int, name: bytes, mode: int, algorithm: str) -> Tracked:
    if stat.S_ISLNK(mode):
        return Tracked(LINK, blob_id(os.readlink(name, dir_fd=dir_fd), algorithm))
    if not stat.S_ISREG(mode):
        return Tracked(None, None)  # a directory or a FIFO where the file was: the file is gone
    try:
        content = read_regular(name, MAX_READ, dir_fd=dir_fd)
    except TooLarge:
        return Tracked(b"large", None)  # never equal to what the commit sees: it decides about the file itself
    except (NotRegular, OSError):
        return Tracked(None, None)
    return Tracked(EXECUTABLE if mode & stat.S_IXUSR else FILE, blob_id(content, algorithm))
