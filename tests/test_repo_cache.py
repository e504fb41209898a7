"""The repo cache on real git: one mirror, a worktree per job removed afterwards, leases on push."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from worker.repo_cache import GitError, RepoCache, git


def sh(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    seed = tmp_path / "seed"
    seed.mkdir()
    sh(seed, "init", "-q", "-b", "main")
    (seed / "a.txt").write_text("one\n")
    sh(seed, "add", "a.txt")
    sh(seed, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "seed")
    bare = tmp_path / "origin.git"
    sh(tmp_path, "clone", "-q", "--bare", str(seed), str(bare))
    return bare


def test_fetch_worktree_commit_push_and_cleanup(tmp_path: Path, origin: Path, redis_url: str) -> None:
    async def scenario() -> None:
        cache = RepoCache(tmp_path / "data", aioredis.Redis.from_url(redis_url))
        mirror = await cache.fetch(7, str(origin), token="")
        assert await cache.remote_sha(mirror, "mull/issue-1") is None
        async with cache.worktree(7, "7-1", "refs/remotes/origin/main") as tree:
            assert (tree.path / "a.txt").read_text() == "one\n"
            assert await cache.commit_all(tree, "nothing\n", "bot", "bot@x") is None
            (tree.path / "b.txt").write_text("two\n")
            (tree.path / ".aider.chat.history.md").write_text("agent litter")
            sha = await cache.commit_all(tree, "Add b\n\nCo-authored-by: m <1+m@x>\n", "bot", "bot@x")
            assert sha
            files = await git("show", "--name-only", "--format=", "HEAD", cwd=tree.path)
            assert files.split() == ["b.txt"]  # excluded agent files never reach a commit
            await cache.push(tree, "mull/issue-1", None, token="")
            path = tree.path
        assert not path.exists()
        assert sh(origin, "rev-parse", "refs/heads/mull/issue-1") == sha
        assert len(sh(mirror, "worktree", "list").splitlines()) == 1  # only the bare mirror itself

        # A second run starts from the pushed branch; someone else pushes meanwhile: the lease refuses.
        mirror = await cache.fetch(7, str(origin), token="")
        remote = await cache.remote_sha(mirror, "mull/issue-1")
        assert remote == sha
        async with cache.worktree(7, "7-1", remote) as tree:
            (tree.path / "c.txt").write_text("three\n")
            await cache.commit_all(tree, "Add c\n", "bot", "bot@x")
            other = tmp_path / "other"
            sh(tmp_path, "clone", "-q", "-b", "mull/issue-1", str(origin), str(other))
            (other / "human.txt").write_text("mine\n")
            sh(other, "add", "human.txt")
            sh(other, "-c", "user.name=h", "-c", "user.email=h@h", "commit", "-qm", "human")
            sh(other, "push", "-q", "origin", "mull/issue-1")
            with pytest.raises(GitError, match="push failed"):
                await cache.push(tree, "mull/issue-1", remote, token="")
        assert "human.txt" in sh(origin, "ls-tree", "--name-only", "mull/issue-1")

    asyncio.run(scenario())


def test_git_errors_carry_gits_words_and_no_token(tmp_path: Path, redis_url: str) -> None:
    async def scenario() -> None:
        cache = RepoCache(tmp_path / "data", aioredis.Redis.from_url(redis_url))
        with pytest.raises(GitError) as err:
            await cache.fetch(8, str(tmp_path / "missing.git"), token="ghs_secretsecretsecretsecret")
        assert "fetch failed" in str(err.value) and "ghs_" not in str(err.value)
        config = (cache.mirror_path(8) / "config").read_text()
        assert "ghs_" not in config and "extraheader" not in config.lower()

    asyncio.run(scenario())
