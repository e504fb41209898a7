"""Mull's commit reads an agent's tree by size first: a huge (even sparse) file costs the worker nothing.

A sparse file is free for the agent to make (``truncate -s 64G``) and would cost the worker its full size to
read. A file over GitHub's limit fails the commit with one line naming it; .gitignore files are read only
up to their limits, alone and together.
"""

from __future__ import annotations

import asyncio
import os
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from doubles.seed_repo import git_in as git
from doubles.seed_repo import seeded_bare

from worker.trees import tree_scan
from worker.trees.regular_file import TooLarge
from worker.trees.repo_cache import init_mirror
from worker.trees.run_tree import open_run_tree
from worker.trees.tree_commit import MAX_FILE_BYTES, FileTooLarge, commit


@pytest.fixture
def mirror(tmp_path: Path) -> Path:
    bare = seeded_bare(tmp_path, {"app.py": "print('helo')\n"}, name="mirror.git")
    asyncio.run(init_mirror(bare))
    return bare


def commit_after(tmp_path: Path, mirror: Path, agent: Callable[[Path], None]) -> tuple[str | None | Exception, int]:
    """Let ``agent`` change the tree, commit it as Mull does: the commit (or FileTooLarge), and the peak of
    the memory Python allocated meanwhile."""

    async def scenario() -> str | None:
        async with open_run_tree(tmp_path / "runs", mirror, "limits", "main") as run:
            agent(run.tree)
            return await commit(run, "Fix the typo\n", "mull[bot]", "1+mull[bot]@x")

    tracemalloc.start()
    try:
        try:
            outcome: str | None | Exception = asyncio.run(scenario())
        except FileTooLarge as exc:
            outcome = exc
        return outcome, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def sparse(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:
        file.truncate(size)


@pytest.mark.parametrize("size", [200 << 20, 64 << 30])
def test_a_sparse_file_over_githubs_limit_fails_the_commit_without_being_read(tmp_path: Path, mirror: Path,
                                                                              size: int) -> None:
    def agent(tree: Path) -> None:
        (tree / "app.py").write_text("print('hello')\n")
        sparse(tree / "assets" / "big.bin", size)

    outcome, peak = commit_after(tmp_path, mirror, agent)
    assert isinstance(outcome, FileTooLarge)
    assert str(outcome) == (f"assets/big.bin is {size} bytes, over GitHub's limit of 100 MB "
                            f"({MAX_FILE_BYTES} bytes) per file: delete it, or list it in .gitignore")
    assert peak < 20 << 20  # a few MB of bookkeeping, never the file


def test_an_ignored_big_file_is_left_out_and_the_rest_committed(tmp_path: Path, mirror: Path) -> None:
    def agent(tree: Path) -> None:
        (tree / "app.py").write_text("print('hello')\n")
        (tree / ".gitignore").write_text("*.bin\n")
        sparse(tree / "big.bin", 200 << 20)

    sha, peak = commit_after(tmp_path, mirror, agent)
    assert isinstance(sha, str) and peak < 20 << 20
    assert git(mirror, "ls-tree", "--name-only", sha).split() == [".gitignore", "app.py"]


def test_gitignore_files_are_read_up_to_their_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tree_scan, "MAX_IGNORE_TOTAL", 100)
    tree = tmp_path / "tree"
    for folder in ("a", "b", "c"):
        (tree / folder).mkdir(parents=True)
        (tree / folder / ".gitignore").write_text("x" * 39 + "\n")  # 40 bytes each: two fit in 100
    sparse(tree / "huge" / ".gitignore", 1 << 30)
    tracemalloc.start()
    try:
        found = tree_scan.survey(tree, frozenset())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(found.ignore_files) == 2 and sum(len(rules) for rules in found.ignore_files.values()) == 80
    assert b"huge" not in found.ignore_files and peak < 5 << 20
    assert set(found.entries) >= {b"a/.gitignore", b"b/.gitignore", b"c/.gitignore", b"huge/.gitignore"}


def test_read_file_takes_only_regular_files_within_the_limit(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    os.mkfifo(tree / "pipe")
    assert tree_scan.read_file(tree, b"pipe", 100) is None
    assert tree_scan.read_file(tree, b"gone/file", 100) is None
    (tree / "small").write_text("hello\n")
    assert tree_scan.read_file(tree, b"small", 100) == b"hello\n"
    with pytest.raises(TooLarge):
        tree_scan.read_file(tree, b"small", 3)
