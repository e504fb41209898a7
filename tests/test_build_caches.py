"""What running the code leaves in a tree never reaches Mull's commit, whatever the repository ignores.

Real git and a real Python run in the tree: the bytecode is what the interpreter writes, not a stand-in.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from doubles.seed_repo import git_in as git
from doubles.seed_repo import seeded_bare

from worker.trees.build_caches import is_bytecode
from worker.trees.repo_cache import init_mirror
from worker.trees.run_tree import open_run_tree
from worker.trees.tree_commit import commit


def committed(tmp_path: Path, files: dict[str, str], agent: Callable[[Path], None]) -> dict[str, str]:
    """Seed a repository with ``files`` (no .gitignore unless given), let ``agent`` work in a run tree, commit
    it as Mull does: the paths of the commit's change, each with its git status letter."""
    bare = seeded_bare(tmp_path, files, name="mirror.git")

    async def scenario() -> dict[str, str]:
        await init_mirror(bare)
        async with open_run_tree(tmp_path / "runs", bare, "caches", "main") as run:
            agent(run.tree)
            sha = await commit(run, "Change\n", "Mull", "mull@localhost")
        if sha is None:
            return {}
        out = git(bare, "diff", "--name-status", "--no-renames", f"{run.base_sha}..{sha}")
        return {line.split("\t")[1]: line.split("\t")[0] for line in out.splitlines()}

    return asyncio.run(scenario())


def run_the_code(tree: Path) -> None:
    (tree / "app.py").write_text("print('hello')\n")
    subprocess.run([sys.executable, "-c", "import app, pkg.mod"], cwd=tree, check=True, capture_output=True)
    (tree / ".tox" / "py311" / "bin").mkdir(parents=True)
    (tree / ".tox" / "py311" / "bin" / "python").write_text("#!/bin/sh\n")
    (tree / ".coverage").write_text("data")
    (tree / ".hypothesis" / "examples").mkdir(parents=True)
    (tree / ".hypothesis" / "examples" / "x").write_text("x")


def test_caches_a_run_writes_are_left_out_without_a_gitignore(tmp_path: Path) -> None:
    changes = committed(tmp_path, {"app.py": "print('helo')\n", "pkg/__init__.py": "", "pkg/mod.py": "X = 1\n"},
                        run_the_code)
    assert changes == {"app.py": "M"}


def test_bytecode_the_repository_tracks_stays_as_committed(tmp_path: Path) -> None:
    """A repository that commits .pyc files keeps them byte for byte: a run rewrites them, the agent did not."""
    files = {"app.py": "print('helo')\n", "pkg/__init__.py": "", "pkg/mod.py": "X = 1\n",
             "pkg/__pycache__/mod.cpython-311.pyc": "stale", "legacy.pyc": "old", "gone.pyc": "old"}

    def agent(tree: Path) -> None:
        run_the_code(tree)
        (tree / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\x00rewritten")
        (tree / "legacy.pyc").write_bytes(b"\x00rewritten")
        (tree / "gone.pyc").unlink()
        (tree / "notes.txt").write_text("new and not a cache\n")

    changes = committed(tmp_path, files, agent)
    assert changes == {"app.py": "M", "notes.txt": "A"}


def test_a_cache_name_elsewhere_in_a_path_is_not_a_cache(tmp_path: Path) -> None:
    def agent(tree: Path) -> None:
        (tree / "docs").mkdir()
        (tree / "docs" / ".venv.md").write_text("how to make one\n")
        (tree / "test" / "fixtures" / "node_modules" / "dep").mkdir(parents=True)
        (tree / "test" / "fixtures" / "node_modules" / "dep" / "index.js").write_text("module.exports = 1\n")
        (tree / "src" / "pycache_tools").mkdir(parents=True)
        (tree / "src" / "pycache_tools" / "clean.py").write_text("pass\n")

    assert committed(tmp_path, {"app.py": ""}, agent) == {
        "docs/.venv.md": "A", "src/pycache_tools/clean.py": "A", "test/fixtures/node_modules/dep/index.js": "A"}


@pytest.mark.parametrize(("path", "expected"), [
    (b"__pycache__/app.cpython-311.pyc", True),
    (b"pkg/__pycache__/notes.txt", True),
    (b"legacy.pyc", True),
    (b"deep/er/opt.pyo", True),
    (b"app.py", False),
    (b"ext.pyd", False),  # a compiled extension someone vendors: built on purpose, not by running
    (b"pycache/app.pyx", False),
    (b"docs/__pycache__.md", False),
])
def test_is_bytecode(path: bytes, expected: bool) -> None:
    assert is_bytecode(path) is expected
