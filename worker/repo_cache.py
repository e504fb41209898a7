"""The repo cache: one bare mirror per repository, fetched incrementally, one git worktree per job.

Git authenticates with an ``http.extraHeader`` passed through ``GIT_CONFIG_*`` environment variables, so
the token is never written to a config file or a remote URL and never appears in a process list.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis

from bot import keys

# Files CLI agents leave behind that must never be committed.
EXCLUDES = (".aider*", ".mull-prompt*")


class GitError(RuntimeError):
    """A git command failed; the message carries git's own words (credentials never appear in them)."""


@dataclass(frozen=True)
class Worktree:
    path: Path
    gitdir: Path  # <mirror>/worktrees/<name>: git writes the index and HEAD here
    mirror: Path


def _auth_env(token: str | None) -> dict[str, str]:
    if not token:
        return {}
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}"}


async def git(*args: str, cwd: Path, token: str | None = None, env: Mapping[str, str] | None = None,
              check: bool = True, timeout: float = 600) -> str:
    """Run git without a terminal prompt; return stdout."""
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
                "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", **_auth_env(token), **(env or {})}
    process = await asyncio.create_subprocess_exec(
        "git", *args, cwd=cwd, env=full_env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise GitError(f"git {args[0]} timed out after {timeout:.0f} s") from None
    if check and process.returncode != 0:
        raise GitError(f"git {args[0]} failed: {err.decode(errors='replace').strip()[-2000:]}")
    return out.decode(errors="replace")


class RepoCache:
    def __init__(self, root: Path, redis: Redis) -> None:
        self.root = root.resolve()
        self._redis = redis

    def mirror_path(self, repo_id: int) -> Path:
        return self.root / "mirrors" / f"{repo_id}.git"

    @contextlib.asynccontextmanager
    async def _locked(self, repo_id: int) -> AsyncIterator[None]:
        """Mirror writes are serialised across every worker on this machine's data dir."""
        async with self._redis.lock(keys.mirror_lock(repo_id), timeout=900, blocking_timeout=900):
            yield

    async def fetch(self, repo_id: int, clone_url: str, token: str) -> Path:
        """Bring the mirror up to date (creating it on first use) and return its path."""
        mirror = self.mirror_path(repo_id)
        async with self._locked(repo_id):
            if not (mirror / "HEAD").exists():
                mirror.mkdir(parents=True, exist_ok=True)
                await git("init", "--bare", "--quiet", str(mirror), cwd=self.root)
                (mirror / "info").mkdir(exist_ok=True)
                (mirror / "info" / "exclude").write_text("\n".join(EXCLUDES) + "\n")
            await git("config", "remote.origin.url", clone_url, cwd=mirror)
            await git("worktree", "prune", cwd=mirror)
            await git("fetch", "--quiet", "--prune", "--no-tags", "origin",
                      "+refs/heads/*:refs/remotes/origin/*", cwd=mirror, token=token)
        return mirror

    async def remote_sha(self, mirror: Path, branch: str) -> str | None:
        out = await git("rev-parse", "--verify", "--quiet", f"refs/remotes/origin/{branch}^{{commit}}",
                        cwd=mirror, check=False)
        return out.strip() or None

    @contextlib.asynccontextmanager
    async def worktree(self, repo_id: int, name: str, start: str) -> AsyncIterator[Worktree]:
        """A detached worktree at ``start``, removed afterwards whatever happens."""
        mirror = self.mirror_path(repo_id)
        path = self.root / "worktrees" / f"{name}-{uuid.uuid4().hex[:8]}"
        path.parent.mkdir(parents=True, exist_ok=True)
        async with self._locked(repo_id):
            await git("worktree", "add", "--detach", "--quiet", str(path), start, cwd=mirror)
        gitdir = Path((await git("rev-parse", "--absolute-git-dir", cwd=path)).strip())
        try:
            yield Worktree(path=path, gitdir=gitdir, mirror=mirror)
        finally:
            async with self._locked(repo_id):
                await git("worktree", "remove", "--force", str(path), cwd=mirror, check=False)
            shutil.rmtree(path, ignore_errors=True)

    async def commit_all(self, tree: Worktree, message: str, author_name: str, author_email: str) -> str | None:
        """Commit every change in the worktree; None when there is nothing to commit."""
        status = await git("status", "--porcelain", "--untracked-files=all", cwd=tree.path)
        if not status.strip():
            return None
        await git("add", "--all", cwd=tree.path)
        identity = {"GIT_AUTHOR_NAME": author_name, "GIT_AUTHOR_EMAIL": author_email,
                    "GIT_COMMITTER_NAME": author_name, "GIT_COMMITTER_EMAIL": author_email}
        await _commit_with_message(tree.path, message, identity)
        return (await git("rev-parse", "HEAD", cwd=tree.path)).strip()

    async def push(self, tree: Worktree, branch: str, expected: str | None, token: str) -> None:
        """Push HEAD to ``branch``, refusing to clobber anything pushed since ``expected`` was fetched."""
        lease = f"--force-with-lease=refs/heads/{branch}:{expected or ''}"
        await git("push", "--quiet", lease, "origin", f"HEAD:refs/heads/{branch}", cwd=tree.path, token=token)


async def _commit_with_message(path: Path, message: str, identity: Mapping[str, str]) -> None:
    message_file = path.parent / f".commit-{uuid.uuid4().hex}"
    message_file.write_text(message)
    try:
        await git("-c", "commit.gpgsign=false", "commit", "--quiet", "--no-verify", "--file", str(message_file),
                  cwd=path, env=identity)
    finally:
        message_file.unlink(missing_ok=True)
