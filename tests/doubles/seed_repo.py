"""Small real git repositories for tests of Mull's git side: git with no user or system config, and a bare
repository seeded with one commit of given files."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path


def git_in(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` with no global or system config (HOME is ``cwd``); return stdout."""
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd), "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"}
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env).stdout


def seeded_bare(tmp_path: Path, files: Mapping[str, str], name: str = "origin.git") -> Path:
    """A bare repository at ``tmp_path/name`` whose ``main`` is one commit of ``files`` (all added, even ignored
    ones)."""
    seed = tmp_path / f"{name}-seed"
    seed.mkdir()
    git_in(seed, "init", "-q", "-b", "main")
    for path, text in files.items():
        target = seed / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git_in(seed, "add", "--all", "--force")
    git_in(seed, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "seed")
    bare = tmp_path / name
    git_in(tmp_path, "clone", "-q", "--bare", str(seed), str(bare))
    return bare
