"""Mull's commit after a repository's setup: only what the agent changed after setup is committed.

Setup installs dependencies and builds (a virtualenv, ``node_modules``, build output, a rewritten lock file);
none of it is the agent's work, and a pull request full of it is useless. The marks are taken on a real tree
of a real mirror, and the commit is read back with git.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from doubles.seed_repo import seeded_bare

from worker.trees.git_process import git
from worker.trees.repo_cache import init_mirror
from worker.trees.run_tree import open_run_tree
from worker.trees.setup_marks import SetupMarks, Tracked
from worker.trees.tree_commit import commit, mark_setup

SEED = {"app.py": "print('hi')\n", "package-lock.json": "{}\n", "docs/guide.md": "# guide\n",
        "tool.sh": "#!/bin/sh\n"}


@pytest.fixture
def mirror(tmp_path: Path) -> Path:
    bare = seeded_bare(tmp_path, SEED, name="mirror.git")
    asyncio.run(init_mirror(bare))
    return bare


def run(tmp_path: Path, mirror: Path, setup: Callable[[Path], None], agent: Callable[[Path], None],
        ) -> tuple[SetupMarks, dict[str, str] | None]:
    """Setup, marks, agent, commit: the marks and the committed files (None: nothing to commit)."""

    async def scenario() -> tuple[SetupMarks, dict[str, str] | None]:
        async with open_run_tree(tmp_path / "runs", mirror, "setup", "main") as tree_run:
            setup(tree_run.tree)
            marks = await mark_setup(tree_run)
            agent(tree_run.tree)
            sha = await commit(tree_run, "Change\n", "mull[bot]", "1+mull[bot]@x", setup=marks)
            if sha is None:
                return marks, None
            names = (await git("ls-tree", "-r", "--name-only", sha, git_dir=mirror)).split()
            return marks, {name: await git("show", f"{sha}:{name}", git_dir=mirror) for name in names}

    return asyncio.run(scenario())


def install(tree: Path) -> None:
    """What a setup does: a virtualenv-like and a node_modules directory, build output beside tracked files,
    a rewritten lock file, a removed file, a link."""
    for folder in ("env/lib/site-packages/dep", "node_modules/left-pad", "docs/_build"):
        (tree / folder).mkdir(parents=True)
    (tree / "env/lib/site-packages/dep/__init__.py").write_text("VALUE = 1\n")
    (tree / "node_modules/left-pad/index.js").write_text("module.exports = 1\n")
    (tree / "docs/_build/guide.html").write_text("<h1>guide</h1>\n")
    (tree / "generated.txt").write_text("made by setup\n")
    (tree / "package-lock.json").write_text('{"lockfileVersion": 3}\n')
    (tree / "tool.sh").unlink()
    os.symlink("env/lib", tree / "lib-link")


def test_only_the_agents_change_is_committed(tmp_path: Path, mirror: Path) -> None:
    def agent(tree: Path) -> None:
        (tree / "app.py").write_text("print('hello')\n")
        (tree / "node_modules/left-pad/index.js").write_text("module.exports = 2\n")  # under a setup root
        (tree / "env/new.txt").write_text("x\n")

    marks, files = run(tmp_path, mirror, install, agent)
    assert marks.roots == {b"env", b"node_modules", b"docs/_build", b"generated.txt", b"lib-link"}
    assert set(marks.changed) == {b"package-lock.json", b"tool.sh"}
    assert marks.changed[b"tool.sh"] == Tracked(None, None)
    assert files == {**SEED, "app.py": "print('hello')\n"}  # lock file as the base has it, tool.sh kept


def test_a_tracked_file_the_agent_changes_after_setup_is_taken(tmp_path: Path, mirror: Path) -> None:
    def agent(tree: Path) -> None:
        (tree / "package-lock.json").write_text('{"lockfileVersion": 3, "agent": true}\n')
        (tree / "docs/guide.md").unlink()
        (tree / "docs/new.md").write_text("new\n")

    _marks, files = run(tmp_path, mirror, install, agent)
    assert files is not None
    assert files["package-lock.json"] == '{"lockfileVersion": 3, "agent": true}\n'
    assert "docs/guide.md" not in files and files["docs/new.md"] == "new\n" and files["tool.sh"] == "#!/bin/sh\n"


def test_nothing_but_setup_output_means_no_commit(tmp_path: Path, mirror: Path) -> None:
    _marks, files = run(tmp_path, mirror, install, lambda tree: None)
    assert files is None


def test_without_setup_marks_the_same_files_would_be_committed(tmp_path: Path, mirror: Path) -> None:
    """The guard above can fail: with no marks, setup's output lands in the commit."""

    async def scenario() -> list[str]:
        async with open_run_tree(tmp_path / "runs", mirror, "setup", "main") as tree_run:
            install(tree_run.tree)
            sha = await commit(tree_run, "Change\n", "mull[bot]", "1+mull[bot]@x")
            assert sha is not None
            return (await git("ls-tree", "-r", "--name-only", sha, git_dir=mirror)).split()

    names = asyncio.run(scenario())
    assert "node_modules/left-pad/index.js" in names and "generated.txt" in names and "tool.sh" not in names


def test_hostile_setup_output_is_looked_at_without_following_or_blocking(tmp_path: Path, mirror: Path) -> None:
    """Setup runs the repository's code: a link out of the tree, a FIFO and a huge sparse file where tracked files
    were are noted without being followed, opened for a writer, or read whole."""
    outside = tmp_path / "secret.txt"
    outside.write_text("secret\n")

    def hostile(tree: Path) -> None:
        (tree / "app.py").unlink()
        os.symlink(outside, tree / "app.py")
        (tree / "docs/guide.md").unlink()
        os.mkfifo(tree / "docs/guide.md")
        with (tree / "package-lock.json").open("wb") as file:
            file.truncate(200 << 20)

    marks, files = run(tmp_path, mirror, hostile, lambda tree: (tree / "package-lock.json").unlink())
    assert marks.changed[b"app.py"].mode == b"120000"
    assert marks.changed[b"docs/guide.md"] == Tracked(None, None)
    assert marks.changed[b"package-lock.json"].oid is None  # sized, not read
    assert files == {name: text for name, text in SEED.items() if name != "package-lock.json"}
