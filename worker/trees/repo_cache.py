"""The repo cache: one bare mirror per repository, fetched incrementally; a plain tree per run; pushes by SHA.

The mirror is Mull's alone. Agents get a run directory with the files of one commit
(``worker/trees/run_tree.py``), Mull commits what they left there into the mirror (``worker/trees/tree_commit.py``),
and pushes that commit from the mirror by SHA, with the token given to that one git command
(``worker/trees/git_process.py``). No git metadata an agent could write is ever read by git outside the sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from worker.trees import spare_tree
from worker.trees.build_caches import BUILD_CACHES
from worker.trees.file_lock import file_lock
from worker.trees.git_process import GitError, git
from worker.trees.run_tree import NO_CONVERSIONS, RunTree, open_run_tree, reclaim

__all__ = ["EXCLUDES", "GitError", "RepoCache", "RunTree", "git", "init_mirror", "push", "reclaim_runs"]

# Never committed, even when the repository's own .gitignore forgets them: what CLI agents leave behind,
# and the caches running the project's code writes (an agent that runs the tests writes them).
EXCLUDES = (".aider*", ".mull-prompt*", *BUILD_CACHES)
STALE_RUN_SECONDS = 4 * 3600  # a run directory this old belongs to no live run (see RepoCache)
MIRROR_LOCK_TIMEOUT_S = 900  # a first clone of a large repository takes minutes
STALE_GIT_LOCK_S = 600  # git holds a lock for a moment; one this old was left by a killed git


async def init_mirror(mirror: Path, url: str | None = None) -> None:
    """Create the bare mirror if it is missing, and (re)write Mull's exclude and attribute rules in it.

    With ``url``, the mirror's config is written whole as well: nothing but a bare repository whose origin is
    ``url``. Nothing should ever add to it; rewriting it before each fetch and push makes sure that even a
    write Mull did not make (a hook, a filter, ``pushurl``, ``insteadOf``) is gone before git reads it.
    """
    if not (mirror / "HEAD").exists():
        mirror.mkdir(parents=True, exist_ok=True)
        await git("init", "--bare", "--quiet", git_dir=mirror)
    info = mirror / "info"
    info.mkdir(exist_ok=True)
    _replace(info / "exclude", "\n".join(EXCLUDES) + "\n")
    _replace(info / "attributes", NO_CONVERSIONS)
    if url is not None:
        if any(ch in url for ch in "\n\r\"\\"):
            raise GitError(f"refusing a clone URL with a line break, quote or backslash: {url!r}")
        _replace(mirror / "config", _CONFIG.format(url=url))


def _replace(path: Path, text: str) -> None:
    """Write ``path`` whole in one step: another worker's git, reading it meanwhile (a push beside a fetch),
    sees the old file or the new one, never a truncated one."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    partial.write_text(text)
    os.replace(partial, path)


_CONFIG = """[core]
\trepositoryformatversion = 0
\tfilemode = true
\tbare = true
[remote "origin"]
\turl = "{url}"
\tfetch = +refs/heads/*:refs/remotes/origin/*
"""


async def push(mirror: Path, url: str, sha: str, branch: str, expected: str | None, token: str) -> None:
    """Push commit ``sha`` to ``branch`` at ``url``, refusing to clobber anything pushed since ``expected``
    (None: the branch must not exist yet).

    The URL is given, not read from the mirror's config: the token goes where GitHub said the repository
    is, whatever a file on disk says (``pushurl``, ``insteadOf``).
    """
    lease = f"--force-with-lease=refs/heads/{branch}:{expected or ''}"
    await init_mirror(mirror, url)
    await git("push", "--quiet", "--no-verify", "--no-recurse-submodules", lease, url,
              f"{sha}:refs/heads/{branch}", git_dir=mirror, token=token)


def stale_git_locks(mirror: Path) -> list[Path]:
    """git's ``.lock`` files in ``mirror`` that no live git holds; call it holding the mirror's lock.

    A git killed with its worker leaves the lock of the ref it was updating, and git then refuses to update
    that ref ever again ("cannot lock ref"). Remote-tracking refs are written by fetches alone, which the mirror's
    lock serialises: holding it, any lock among them is stale. Other locks (packed-refs, a commit's temporary
    ref) may belong to a live git in another worker, which holds one for milliseconds: stale once old."""
    now = time.time()
    found = []
    for path in [*mirror.glob("*.lock"), *(mirror / "refs").rglob("*.lock")]:
        remote = (mirror / "refs" / "remotes") in path.parents
        with contextlib.suppress(FileNotFoundError):
            if remote or now - path.stat().st_mtime > STALE_GIT_LOCK_S:
                found.append(path)
    return found


def reclaim_runs(root: Path, stale_after: float) -> list[Path]:
    """Remove the run directories under ``root`` older than ``stale_after`` seconds: runs of a worker that died.

    File system only, no Redis: the worker does it at start-up, before it connects, so a Redis outage never
    keeps killed runs' trees on disk (``worker/app.py``)."""
    return reclaim(root.resolve() / "runs", stale_after) + reclaim(root.resolve() / "spares", stale_after)


class RepoCache:
    """Mirrors under ``<root>/mirrors``, run directories under ``<root>/runs``, one spare checked-out tree
    per repository under ``<root>/spares`` (``worker/trees/spare_tree.py``).

    ``stale_after`` must exceed the longest run (agent or critique, with the job's overhead) by a wide
    margin: run directories older than that are reclaimed whenever a new run starts, when a worker starts
    and periodically (``worker/app.py``).
    """

    def __init__(self, root: Path, *, stale_after: float = STALE_RUN_SECONDS) -> None:
        self.root = root.resolve()
        self.runs = self.root / "runs"
        self.spares = self.root / "spares"
        self._stale_after = stale_after
        self._refilling: set[int] = set()  # one background checkout per repository at a time
        self._pruned: set[int] = set()  # mirrors whose leftover worktrees this process has pruned

    def reclaim_stale(self) -> list[Path]:
        return reclaim_runs(self.root, self._stale_after)

    def mirror_path(self, repo_id: int) -> Path:
        return self.root / "mirrors" / f"{repo_id}.git"

    @contextlib.asynccontextmanager
    async def _locked(self, repo_id: int) -> AsyncIterator[None]:
        """Mirror fetches are serialised across every worker on this machine's data dir (the mirrors are this
        machine's alone); a killed worker's hold ends with its process."""
        async with file_lock(self.root / "mirrors" / f"{repo_id}.lock", timeout=MIRROR_LOCK_TIMEOUT_S):
            yield

    async def fetch(self, repo_id: int, clone_url: str, token: str) -> Path:
        """Bring the mirror up to date (creating it on first use) and return its path."""
        mirror = self.mirror_path(repo_id)
        async with self._locked(repo_id):
            await init_mirror(mirror, clone_url)
            for stale in stale_git_locks(mirror):
                stale.unlink(missing_ok=True)
            if repo_id not in self._pruned:  # mirrors from before run trees had worktrees: once per process
                await git("worktree", "prune", git_dir=mirror)
                self._pruned.add(repo_id)
            await git("fetch", "--quiet", "--prune", "--no-tags", "--no-recurse-submodules", "origin",
                      "+refs/heads/*:refs/remotes/origin/*", git_dir=mirror, token=token)
        return mirror

    async def has_commit(self, mirror: Path, sha: str) -> bool:
        if not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", sha):
            return False
        out = await git("cat-file", "-t", sha, git_dir=mirror, check=False)
        return out.strip() == "commit"

    async def remote_shas(self, mirror: Path, *branches: str) -> dict[str, str | None]:
        """Each branch's commit as last fetched (None: not in the mirror), read by one git."""
        refs = {f"refs/remotes/origin/{branch}": branch for branch in branches}
        out = await git("for-each-ref", "--format=%(objectname) %(refname)", *refs, git_dir=mirror, check=False)
        found: dict[str, str | None] = dict.fromkeys(branches)
        for line in out.splitlines():
            sha, _, ref = line.partition(" ")
            if ref in refs:  # a pattern also matches refs below it (origin/main/x): only the branch itself
                found[refs[ref]] = sha
        return found

    async def remote_sha(self, mirror: Path, branch: str) -> str | None:
        return (await self.remote_shas(mirror, branch))[branch]

    @contextlib.asynccontextmanager
    async def run_tree(self, repo_id: int, name: str, start: str, *, agent_repo: bool = False,
                       spare_branch: str | None = None) -> AsyncIterator[RunTree]:
        """A plain tree of ``start`` for one run (see ``open_run_tree``), removed afterwards.

        It is the repository's spare tree when there is one; either way a new spare is checked out in the
        background while the run goes on (the run waits for it at the end, so nothing outlives the job). The
        spare is made of ``spare_branch`` as fetched (the base branch, where the next run most likely starts;
        default, this run's commit). A spare of another commit is brought to the run's by updating only
        the files that differ, which still reads and writes the index of every file.
        """
        self.reclaim_stale()
        mirror = self.mirror_path(repo_id)

        async def prepared(base: str, into: Path) -> bool:
            return await spare_tree.claim(self.spares, repo_id, mirror, base, into)

        async with open_run_tree(self.runs, mirror, name, start, agent_repo=agent_repo, prepared=prepared) as run:
            refill = None if repo_id in self._refilling else asyncio.create_task(
                self._refill(repo_id, mirror, run, spare_branch))
            try:
                yield run
            except BaseException:
                if refill is not None:
                    refill.cancel()
                raise
            finally:
                if refill is not None:
                    with contextlib.suppress(asyncio.CancelledError):
                        await refill

    async def _refill(self, repo_id: int, mirror: Path, run: RunTree, spare_branch: str | None) -> None:
        self._refilling.add(repo_id)
        try:
            base = (await self.remote_sha(mirror, spare_branch) if spare_branch else None) or run.base_sha
            await spare_tree.refill(self.spares, repo_id, mirror, base)
        finally:
            self._refilling.discard(repo_id)
