"""Warm environments: what a repository's setup prepared, kept on this machine so later runs restore it.

One tar file per repository and key (``worker/trees/env_key.py``) under ``<data dir>/repos/envs/<repo id>/``,
beside the mirrors. A run whose key has an entry restores it into its tree instead of running setup
(``worker/trees/env_archive.py``); a run that ran setup stores what it created. Storing writes a private file and
renames it into place, so a reader (another worker on the same data dir) sees a whole archive or none, and an
entry removed while being read stays readable through the reader's descriptor.

Bounded: the entries of all repositories together stay within ``limit`` bytes (``MULL_ENV_CACHE_MB``); the least
recently used go first (an entry's modification time is when it was last stored or restored). One store per
repository at a time, and one eviction at a time, each under a ``flock`` (``worker/trees/file_lock.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tarfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from worker.trees.env_archive import Restored, TooLarge, capture, restore
from worker.trees.file_lock import LockTimeout, file_lock

LOCK_TIMEOUT_S = 300  # a store writes one archive; a holder this slow hangs
STALE_PARTIAL_S = 3600  # a partial file this old was left by a killed worker
_KEY = re.compile(r"[0-9a-f]{64}")
_SUFFIX = ".tar"


@dataclass(frozen=True)
class Stored:
    """What ``store`` did: ``size`` bytes written (0 when not), ``why`` it did not, and how many it evicted."""

    size: int
    why: str = ""
    evicted: int = 0


class EnvCache:
    def __init__(self, root: Path, limit: int) -> None:
        self.root = root
        self.limit = limit  # bytes; 0 turns the cache off

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    def entry(self, repo_id: int, key: str) -> Path:
        if not _KEY.fullmatch(key):
            raise ValueError(f"not an environment key: {key!r}")
        return self.root / str(int(repo_id)) / f"{key}{_SUFFIX}"

    async def restore(self, repo_id: int, key: str, tree: Path) -> Restored:
        """Restore ``key``'s environment into ``tree``; ``ok`` False (nothing restored) on a miss or a conflict."""
        if not self.enabled:
            return Restored(False, "the cache is off")
        path = self.entry(repo_id, key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return Restored(False, "no cached environment")
        with os.fdopen(fd, "rb") as archive:
            with contextlib.suppress(OSError):
                os.utime(fd)  # used now: last to be evicted
            return await asyncio.to_thread(restore, archive, tree)

    async def store(self, repo_id: int, key: str, tree: Path, roots: frozenset[bytes]) -> Stored:
        """Keep what setup created under ``roots`` of ``tree`` as ``key``'s environment, then evict to the bound."""
        if not self.enabled:
            return Stored(0, "the cache is off")
        if not roots:
            return Stored(0, "setup created nothing")
        path = self.entry(repo_id, key)
        try:
            async with file_lock(self.root / f"{int(repo_id)}.lock", timeout=LOCK_TIMEOUT_S):
                if path.exists():
                    return Stored(0, "another run stored it")
                size = await asyncio.to_thread(self._write, path, tree, roots)
        except (LockTimeout, OSError, RecursionError, tarfile.TarError, ValueError) as exc:
            return Stored(0, f"not kept: {exc}")  # the run goes on; the next one runs setup again
        if not size:
            return Stored(0, f"larger than the cache's {self.limit} bytes (MULL_ENV_CACHE_MB)")
        evicted = await self.evict()
        return Stored(size, evicted=evicted)

    def _write(self, path: Path, tree: Path, roots: frozenset[bytes]) -> int:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_partials(path.parent)
        partial = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial")
        try:
            with partial.open("xb") as out:
                size = capture(tree, roots, out, self.limit)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, path)
            return size
        except TooLarge:
            return 0
        finally:
            partial.unlink(missing_ok=True)

    async def evict(self) -> int:
        """Remove the least recently used entries until all fit within the limit; how many went."""
        async with file_lock(self.root / "evict.lock", timeout=LOCK_TIMEOUT_S):
            return await asyncio.to_thread(self._evict)

    def _evict(self) -> int:
        entries = []
        for path in self.root.glob(f"*/*{_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):
                info = path.stat()
                entries.append((info.st_mtime, info.st_size, path))
        total = sum(size for _when, size, _path in entries)
        evicted = 0
        for _when, size, path in sorted(entries):
            if total <= self.limit:
                break
            path.unlink(missing_ok=True)
            total -= size
            evicted += 1
        return evicted


def _remove_stale_partials(folder: Path) -> None:
    cutoff = time.time() - STALE_PARTIAL_S
    for partial in folder.glob(".*.partial"):
        with contextlib.suppress(FileNotFoundError):
            if partial.stat().st_mtime < cutoff:
                partial.unlink()
