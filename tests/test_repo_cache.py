"""The repo cache on real git: one mirror, a plain tree per run removed afterwards, Mull's commit, leases on push."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import pytest
from doubles.seed_repo import seeded_bare

from worker.trees.repo_cache import GitError, RepoCache, git, push
from worker.trees.run_tree import reclaim
from worker.trees.tree_commit import commit


def sh(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    return seeded_bare(tmp_path, {"a.txt": "one\n"})


def test_fetch_run_tree_commit_push_and_cleanup(tmp_path: Path, origin: Path) -> None:
    async def scenario() -> None:
        cache = RepoCache(tmp_path / "data")
        mirror = await cache.fetch(7, str(origin), token="")
        assert await cache.remote_sha(mirror, "mull/issue-1") is None
        async with cache.run_tree(7, "7-mull/issue-1", "refs/remotes/origin/main") as run:
            assert run.base_sha == sh(origin, "rev-parse", "main")
            assert run.tree.parent.parent == cache.runs and run.tree.parent.name.startswith("7-mull-issue-1-")
            assert sorted(p.name for p in run.tree.iterdir()) == ["a.txt"]  # files only: no .git of Mull's
            assert (run.tree / "a.txt").read_text() == "one\n"
            assert await commit(run, "nothing\n", "bot", "bot@x") is None
            (run.tree / "b.txt").write_text("two\n")
            (run.tree / ".aider.chat.history.md").write_text("agent litter")
            (run.tree / ".mull-prompt-1.md").write_text("prompt")
            sha = await commit(run, "Add b\n\nCo-authored-by: m <1+m@x>\n", "bot", "bot@x")
            assert sha
            files = await git("show", "--name-only", "--format=", sha, git_dir=mirror)
            assert files.split() == ["b.txt"]  # excluded agent files never reach a commit
            await push(mirror, str(origin), sha, "mull/issue-1", None, token="")
            run_dir = run.run_dir
        assert not run_dir.exists()
        assert sh(origin, "rev-parse", "refs/heads/mull/issue-1") == sha
        assert sh(origin, "log", "-1", "--format=%an <%ae> %cn|%B", sha).startswith("bot <bot@x> bot|Add b\n\nCo-")
        assert sh(mirror, "for-each-ref", "refs/mull") == ""  # the private ref is gone

        # A second run starts from the pushed branch; someone else pushes meanwhile: the lease refuses.
        mirror = await cache.fetch(7, str(origin), token="")
        remote = await cache.remote_sha(mirror, "mull/issue-1")
        assert remote == sha
        async with cache.run_tree(7, "7-1", remote) as run:
            assert (run.tree / "b.txt").read_text() == "two\n"
            (run.tree / "c.txt").write_text("three\n")
            second = await commit(run, "Add c\n", "bot", "bot@x")
            assert second and (await git("rev-parse", f"{second}^", git_dir=mirror)).strip() == sha
            other = tmp_path / "other"
            sh(tmp_path, "clone", "-q", "-b", "mull/issue-1", str(origin), str(other))
            (other / "human.txt").write_text("mine\n")
            sh(other, "add", "human.txt")
            sh(other, "-c", "user.name=h", "-c", "user.email=h@h", "commit", "-qm", "human")
            sh(other, "push", "-q", "origin", "mull/issue-1")
            with pytest.raises(GitError, match="push failed"):
                await push(mirror, str(origin), second, "mull/issue-1", remote, token="")
        assert "human.txt" in sh(origin, "ls-tree", "--name-only", "mull/issue-1")

    asyncio.run(scenario())


def test_the_run_dir_goes_when_the_run_fails(tmp_path: Path, origin: Path) -> None:
    async def scenario() -> Path:
        cache = RepoCache(tmp_path / "data")
        await cache.fetch(7, str(origin), token="")
        async with cache.run_tree(7, "7-1", "refs/remotes/origin/main") as run:
            (run.tree / "deep" / "er").mkdir(parents=True)
            (run.tree / "deep" / "er" / "x").write_text("x")
            raise RuntimeError(str(run.run_dir))

    with pytest.raises(RuntimeError) as failed:
        asyncio.run(scenario())
    assert not Path(str(failed.value)).exists()


def test_a_start_that_is_not_a_commit_says_so(tmp_path: Path, origin: Path) -> None:
    async def scenario() -> None:
        cache = RepoCache(tmp_path / "data")
        await cache.fetch(7, str(origin), token="")
        async with cache.run_tree(7, "7-1", "refs/remotes/origin/gone"):
            pass

    with pytest.raises(GitError, match="'refs/remotes/origin/gone' is not a commit.*fetch it first"):
        asyncio.run(scenario())
    assert not (tmp_path / "data" / "runs").exists() or list((tmp_path / "data" / "runs").iterdir()) == []


def test_files_arrive_byte_for_byte_whatever_gitattributes_say(tmp_path: Path) -> None:
    """The base's .gitattributes cannot make checkout convert files (which would also fake changes)."""
    seed = tmp_path / "seed"
    seed.mkdir()
    sh(seed, "init", "-q", "-b", "main")
    (seed / ".gitattributes").write_text("* text eol=crlf ident\n")
    (seed / "lf.txt").write_bytes(b"a\nb $Id$\n")
    sh(seed, "add", ".")
    sh(seed, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "seed")

    async def scenario() -> None:
        cache = RepoCache(tmp_path / "data")
        await cache.fetch(3, str(seed), token="")
        async with cache.run_tree(3, "3-1", "refs/remotes/origin/main") as run:
            assert (run.tree / "lf.txt").read_bytes() == b"a\nb $Id$\n"
            assert await commit(run, "nothing\n", "bot", "bot@x") is None

    asyncio.run(scenario())


def test_agent_repo_is_a_disposable_repository_of_the_base(tmp_path: Path, origin: Path) -> None:
    async def scenario() -> None:
        cache = RepoCache(tmp_path / "data")
        mirror = await cache.fetch(7, str(origin), token="")
        async with cache.run_tree(7, "7-1", "refs/remotes/origin/main", agent_repo=True) as run:
            (run.tree / "a.txt").write_text("changed\n")
            agent_git = ["git", "-c", "user.name=a", "-c", "user.email=a@a"]
            diff = subprocess.run([*agent_git, "diff"], cwd=run.tree, capture_output=True, text=True, check=True)
            assert "-one\n+changed" in diff.stdout  # the agent's `git diff` works against the base
            subprocess.run([*agent_git, "commit", "-qam", "agent's own commit"], cwd=run.tree, check=True)
            sha = await commit(run, "Change a\n", "bot", "bot@x")
            assert sha
            assert (await git("show", "--name-only", "--format=%s", sha, git_dir=mirror)).split() == [
                "Change", "a", "a.txt"]
            assert "agent's own commit" not in await git("log", "--format=%s", "--all", git_dir=mirror)

    asyncio.run(scenario())


def test_gitlinks_of_the_base_stay_as_they_are(tmp_path: Path) -> None:
    seed = tmp_path / "seed"
    seed.mkdir()
    sh(seed, "init", "-q", "-b", "main")
    (seed / "a.txt").write_text("a\n")
    sub = "1" * 40
    sh(seed, "update-index", "--add", "--cacheinfo", f"160000,{sub},vendor/lib")
    sh(seed, "add", "a.txt")
    sh(seed, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "seed")

    async def scenario() -> None:
        cache = RepoCache(tmp_path / "data")
        mirror = await cache.fetch(4, str(seed), token="")
        async with cache.run_tree(4, "4-1", "refs/remotes/origin/main") as run:
            (run.tree / "vendor" / "lib").mkdir(parents=True, exist_ok=True)
            (run.tree / "vendor" / "lib" / "planted.txt").write_text("inside the submodule\n")
            (run.tree / "a.txt").write_text("b\n")
            sha = await commit(run, "Change a\n", "bot", "bot@x")
            assert sha
            listing = await git("ls-tree", "-r", sha, git_dir=mirror)
            assert f"160000 commit {sub}\tvendor/lib" in listing and "planted" not in listing

    asyncio.run(scenario())


def test_stale_run_dirs_are_reclaimed_and_live_ones_kept(tmp_path: Path, origin: Path) -> None:
    async def scenario() -> None:
        cache = RepoCache(tmp_path / "data", stale_after=3600)
        await cache.fetch(7, str(origin), token="")
        crashed = cache.runs / "7-mull-issue-1-abcd1234"
        (crashed / "tree" / "sub").mkdir(parents=True)
        (crashed / "tree" / "sub" / "f").write_text("left behind\n")
        old = time.time() - 2 * 3600
        os.utime(crashed, (old, old))
        live = cache.runs / "7-mull-issue-2-abcd1234"
        (live / "tree").mkdir(parents=True)
        async with cache.run_tree(7, "7-3", "refs/remotes/origin/main") as run:
            assert not crashed.exists() and live.exists() and run.tree.exists()
        assert reclaim(cache.runs, 3600, now=time.time() + 2 * 3600) == [live]
        assert list(cache.runs.iterdir()) == []

    asyncio.run(scenario())


@pytest.mark.skipif(os.geteuid() == 0, reason="root removes unwritable directories anyway")
def test_a_tree_made_unwritable_is_still_removed(tmp_path: Path, origin: Path) -> None:
    async def scenario() -> Path:
        cache = RepoCache(tmp_path / "data")
        await cache.fetch(7, str(origin), token="")
        async with cache.run_tree(7, "7-1", "refs/remotes/origin/main") as run:
            locked = run.tree / "locked"
            (locked / "inner").mkdir(parents=True)
            (locked / "inner" / "f").write_text("x")
            (locked / "inner").chmod(0)
            locked.chmod(0o500)
            return run.run_dir

    assert not asyncio.run(scenario()).exists()


def test_git_errors_carry_gits_words_and_no_token(tmp_path: Path) -> None:
    async def scenario() -> None:
        cache = RepoCache(tmp_path / "data")
        with pytest.raises(GitError) as err:
            await cache.fetch(8, str(tmp_path / "missing.git"), token="ghs_secretsecretsecretsecret")
        assert "fetch failed" in str(err.value) and "ghs_" not in str(err.value)
        config = (cache.mirror_path(8) / "config").read_text()
        assert "ghs_" not in config and "extraheader" not in config.lower()

    asyncio.run(scenario())


def test_a_fetch_killed_midway_leaves_no_lock_that_stops_the_next(tmp_path: Path, origin: Path) -> None:
    """git locks a ref it updates with a ``.lock`` file; a worker SIGKILLed during a fetch leaves that file
    behind, and every later fetch would fail with "cannot lock ref". Under the mirror's lock no other fetch
    can be running, so such files are stale and go; other git lock files go once they are clearly old."""
    async def scenario() -> tuple[str | None, str]:
        cache = RepoCache(tmp_path / "data")
        mirror = await cache.fetch(7, str(origin), token="")
        (mirror / "refs" / "remotes" / "origin" / "main.lock").write_text("")
        packed = mirror / "packed-refs.lock"
        packed.write_text("")
        old = time.time() - 3600
        os.utime(packed, (old, old))
        fresh = mirror / "refs" / "mull-runs-live.lock"  # a commit in another worker, just now: not ours to take
        fresh.parent.mkdir(exist_ok=True)
        fresh.write_text("")
        work = tmp_path / "work"
        sh(tmp_path, "clone", "-q", str(origin), str(work))
        (work / "a.txt").write_text("two\n")
        sh(work, "-c", "user.name=a", "-c", "user.email=a@x", "commit", "-qam", "two")
        sh(work, "push", "-q", "origin", "main")
        await cache.fetch(7, str(origin), token="")
        assert not packed.exists() and fresh.exists()
        return await cache.remote_sha(mirror, "main"), sh(origin, "rev-parse", "main")

    fetched, pushed = asyncio.run(scenario())
    assert fetched == pushed


def test_a_mirror_from_before_run_trees_loses_its_dead_worktrees_at_its_first_fetch(tmp_path: Path,
                                                                                   origin: Path) -> None:
    """Older versions checked runs out as worktrees of the mirror; a worker's first fetch forgets the dead ones."""
    async def scenario() -> list[str]:
        cache = RepoCache(tmp_path / "data")
        mirror = await cache.fetch(3, str(origin), token="")
        old_run = tmp_path / "old-run"
        sh(tmp_path, "--git-dir", str(mirror), "worktree", "add", "--quiet", "--detach", str(old_run),
           "refs/remotes/origin/main")
        subprocess.run(["rm", "-rf", str(old_run)], check=True)
        restarted = RepoCache(tmp_path / "data")  # a new worker process
        await restarted.fetch(3, str(origin), token="")
        return sh(tmp_path, "--git-dir", str(mirror), "worktree", "list", "--porcelain").splitlines()

    listed = asyncio.run(scenario())
    assert not [line for line in listed if "old-run" in line]


def test_remote_shas_reads_each_branch_exactly_in_one_call(tmp_path: Path, origin: Path) -> None:
    async def scenario() -> tuple[dict[str, str | None], str]:
        cache = RepoCache(tmp_path / "data")
        main = sh(origin, "rev-parse", "main")
        sh(origin, "update-ref", "refs/heads/feature", main)
        sh(origin, "symbolic-ref", "HEAD", "refs/heads/feature")
        sh(origin, "update-ref", "-d", "refs/heads/main")
        sh(origin, "update-ref", "refs/heads/main/nested", main)  # below "main" as a path: not main itself
        mirror = await cache.fetch(3, str(origin), token="")
        return await cache.remote_shas(mirror, "main", "feature", "gone"), main

    found, main = asyncio.run(scenario())
    assert found == {"main": None, "feature": main, "gone": None}
