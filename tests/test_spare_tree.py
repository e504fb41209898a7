"""Spare run trees on real git: a run takes the one made for it, brought to its commit, never an agent's leftovers."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from doubles.seed_repo import seeded_bare

from worker.trees.repo_cache import RepoCache

START = "refs/remotes/origin/main"


def sh(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def files(tree: Path) -> dict[str, str]:
    return {str(p.relative_to(tree)): p.read_text() for p in sorted(tree.rglob("*")) if p.is_file()}


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    return seeded_bare(tmp_path, {"a.txt": "one\n", "gone.txt": "soon deleted\n", "pkg/b.txt": "b\n"})


def push_change(tmp_path: Path, origin: Path) -> None:
    clone = tmp_path / "human"
    sh(tmp_path, "clone", "--quiet", str(origin), str(clone))
    (clone / "a.txt").write_text("two\n")
    (clone / "new.txt").write_text("new\n")
    sh(clone, "rm", "--quiet", "gone.txt")
    sh(clone, "-c", "user.name=h", "-c", "user.email=h@x", "commit", "--quiet", "-am", "change", "--allow-empty")
    sh(clone, "add", "new.txt")
    sh(clone, "-c", "user.name=h", "-c", "user.email=h@x", "commit", "--quiet", "-m", "add new")
    sh(clone, "push", "--quiet", "origin", "HEAD:main")


def test_the_next_run_takes_a_clean_spare_brought_to_its_commit(tmp_path: Path, origin: Path,
                                                                redis_url: str) -> None:
    async def scenario() -> None:
        cache = RepoCache(tmp_path / "data")
        mirror = await cache.fetch(7, str(origin), token="")
        spare = cache.spares / "7"
        async with cache.run_tree(7, "first", START) as run:
            (run.tree / "a.txt").write_text("the agent was here\n")
            (run.tree / "litter.txt").write_text("x")
        assert (spare / "commit").read_text().strip() == run.base_sha
        assert files(spare / "tree") == {"a.txt": "one\n", "gone.txt": "soon deleted\n", "pkg/b.txt": "b\n"}

        push_change(tmp_path, origin)
        await cache.fetch(7, str(origin), token="")
        async with cache.run_tree(7, "second", START) as run:
            assert not (spare / "commit").exists() or (spare / "commit").read_text().strip() == run.base_sha
            assert run.base_sha == sh(origin, "rev-parse", "main")
            assert files(run.tree) == {"a.txt": "two\n", "new.txt": "new\n", "pkg/b.txt": "b\n"}
            assert run.tree.parent.parent == cache.runs
        # The second run's spare was made again, at its commit; claimed ones leave nothing behind.
        assert (spare / "commit").read_text().strip() == sh(origin, "rev-parse", "main")
        assert sorted(p.name for p in cache.spares.iterdir()) == ["7"]
        assert mirror.exists()

    asyncio.run(scenario())


def test_a_broken_spare_is_discarded_and_the_run_checks_out_afresh(tmp_path: Path, origin: Path,
                                                                   redis_url: str) -> None:
    async def scenario() -> None:
        cache = RepoCache(tmp_path / "data")
        await cache.fetch(7, str(origin), token="")
        async with cache.run_tree(7, "first", START):
            pass
        (cache.spares / "7" / "commit").write_text("0" * 40 + "\n")  # a commit the mirror does not have
        async with cache.run_tree(7, "second", START) as run:
            assert files(run.tree) == {"a.txt": "one\n", "gone.txt": "soon deleted\n", "pkg/b.txt": "b\n"}
        assert sorted(p.name for p in cache.spares.iterdir()) == ["7"]
        assert (cache.spares / "7" / "commit").read_text().strip() == run.base_sha

    asyncio.run(scenario())


def test_a_run_of_another_commit_leaves_a_spare_of_the_base_branch(tmp_path: Path, origin: Path,
                                                                   redis_url: str) -> None:
    """A critique of a pull request's head must not leave its head as the spare: the next run starts from the
    base branch, and a spare of another commit costs it an update of the whole index."""
    async def scenario() -> None:
        cache = RepoCache(tmp_path / "data")
        await cache.fetch(7, str(origin), token="")
        main = sh(origin, "rev-parse", "main")
        head = sh(origin, "commit-tree", "-p", main, "-m", "a pull request", f"{main}^{{tree}}")
        sh(origin, "update-ref", "refs/heads/mull/issue-1", head)
        await cache.fetch(7, str(origin), token="")
        async with cache.run_tree(7, "critique", head, spare_branch="main") as run:
            assert run.base_sha == head
        assert (cache.spares / "7" / "commit").read_text().strip() == main
        async with cache.run_tree(7, "critique-again", head, spare_branch="no-such-branch"):
            pass
        assert (cache.spares / "7" / "commit").read_text().strip() == head  # no such branch: the run's own

    asyncio.run(scenario())
