"""A run's plain tree: the files of one commit, with none of Mull's git metadata in or beside it.

The agent (and everything it runs) may write anything into its tree, including a ``.git`` file or
directory. If that tree were a git worktree of Mull's mirror, git on the host would later obey what the
agent wrote there (hooks, ``core.fsmonitor``, filters, remotes). So Mull checks the files out itself, with
a private index that lives in the run directory beside the tree, and reads the tree back file by file
(``worker/trees/tree_commit.py``). An agent that wants a repository of its own (``git diff``) can get a
disposable one inside the tree; Mull never reads it.

Layout: ``<runs>/<name>-<random>/tree/`` is the only part the agent sees; the rest of the run directory
(index, fast-import stream, ignore rules) is Mull's. The run directory is removed afterwards whatever
happens, and directories of runs that are clearly gone (a crashed worker) are reclaimed by age.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from worker.trees.git_process import GitError, git

# Git applies end-of-line, ident, encoding and filter conversions named by the tree's own .gitattributes
# when it checks files out; the mirror's info/attributes overrides them all, so the files the agent gets
# are the blobs byte for byte and reading them back finds no change the agent did not make.
NO_CONVERSIONS = "* -text -eol -ident -filter -working-tree-encoding\n"
_AGENT_IDENTITY = ("-c", "user.name=Mull", "-c", "user.email=mull@localhost", "-c", "commit.gpgsign=false")


@dataclass(frozen=True)
class RunTree:
    tree: Path  # the agent's working directory: plain files, read back by Mull afterwards
    base_sha: str  # the commit the tree was checked out from
    mirror: Path  # Mull's bare mirror; never visible to the agent

    @property
    def run_dir(self) -> Path:
        """Mull's side of the run: beside the tree, never inside it."""
        return self.tree.parent


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "-", name)[:80] or "run"


async def resolve_commit(mirror: Path, start: str) -> str:
    """The commit SHA ``start`` (a SHA or a ref of the mirror) names."""
    sha = (await git("rev-parse", "--verify", "--quiet", f"{start}^{{commit}}", git_dir=mirror,
                     check=False)).strip()
    if not sha:
        raise GitError(f"{start!r} is not a commit in the mirror {mirror.name}; fetch it first")
    return sha


@contextlib.asynccontextmanager
async def open_run_tree(runs: Path, mirror: Path, name: str, start: str, *, agent_repo: bool = False,
                        prepared: Callable[[str, Path], Awaitable[bool]] | None = None) -> AsyncIterator[RunTree]:
    """A fresh run directory under ``runs`` whose ``tree/`` holds the files of ``start``.

    With ``agent_repo`` the tree also gets a disposable repository (``tree/.git``, one commit of the
    starting files) for agents that want one. ``prepared(commit, path)`` may put a tree of that commit at
    ``path`` (``worker/trees/spare_tree.py``) and say so; otherwise the files are checked out here. Everything is
    removed afterwards whatever happens.
    """
    base = await resolve_commit(mirror, start)
    runs.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix=f"{_slug(name)}-", dir=runs))
    try:
        tree = run_dir / "tree"
        if prepared is None or not await prepared(base, tree):
            tree.mkdir()
            index = {"GIT_INDEX_FILE": str(run_dir / "checkout.index")}
            await git("read-tree", base, git_dir=mirror, work_tree=tree, env=index)
            await git("checkout-index", "--all", "--force", git_dir=mirror, work_tree=tree, env=index)
            (run_dir / "checkout.index").unlink()
        if agent_repo:
            await _disposable_repo(tree)
        yield RunTree(tree=tree, base_sha=base, mirror=mirror)
    finally:
        remove_run_dir(run_dir)


async def _disposable_repo(tree: Path) -> None:
    """``tree/.git`` with one commit of the files as checked out; made before the agent runs, never read."""
    agent_git = tree / ".git"
    await git("init", "--quiet", "--template=", "--initial-branch=main", git_dir=agent_git, work_tree=tree)
    (agent_git / "info").mkdir(exist_ok=True)
    (agent_git / "info" / "attributes").write_text(NO_CONVERSIONS)
    await git("add", "--all", "--force", git_dir=agent_git, work_tree=tree)
    await git(*_AGENT_IDENTITY, "commit", "--quiet", "--no-verify", "--allow-empty", "-m",
              "The files this run started from", git_dir=agent_git, work_tree=tree)


def remove_run_dir(path: Path) -> None:
    """Remove a run directory, even one whose tree the agent made unwritable; never follows a link."""
    shutil.rmtree(path, ignore_errors=True)
    if not os.path.lexists(path):
        return
    _allow_removal(path)
    shutil.rmtree(path, ignore_errors=True)


def _allow_removal(path: Path) -> None:
    """Give the owner back rwx on every directory (not on what a link points at) so rmtree can empty it."""
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)
    for root, dirs, _files in os.walk(path):
        for name in dirs:
            child = os.path.join(root, name)
            with contextlib.suppress(OSError):
                if stat.S_ISDIR(os.lstat(child).st_mode):
                    os.chmod(child, 0o700)


def reclaim(runs: Path, older_than: float, now: float | None = None) -> list[Path]:
    """Remove run directories last changed more than ``older_than`` seconds ago: their runs are gone.

    ``older_than`` must exceed the longest run by a wide margin (other workers on this data dir may
    still be running theirs). Returns what was removed.
    """
    cutoff = (time.time() if now is None else now) - older_than
    removed: list[Path] = []
    stale: list[Path] = []
    with contextlib.suppress(FileNotFoundError), os.scandir(runs) as entries:
        stale = [Path(entry.path) for entry in entries
                 if entry.is_dir(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < cutoff]
    for path in stale:
        remove_run_dir(path)
        removed.append(path)
    return removed
