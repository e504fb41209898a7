"""What ``mull try`` starts from: the checkout's HEAD, plus its uncommitted changes when the user asks.

The run works on a commit in Mull's own mirror, never in the user's checkout. By default that commit is
HEAD, and the user is told how many uncommitted changes are left out, because a run that silently ignores
the file they just edited is baffling. With ``--include-uncommitted`` Mull commits the changed and new
files into its mirror (a private index, ``update-index`` with the exact paths, ``commit-tree``): the user's
index, refs and objects stay as they were. Either way the printed patch applies to the checkout as it is.

Which paths count as changed is asked of ``git status`` as the user runs it (their own configuration,
global ignore files included), so a file the user keeps out of git (an ``.env``) is never copied into a tree
the model reads. It only reads (``GIT_OPTIONAL_LOCKS=0``: it does not even refresh the index).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from bot.settings import ConfigError
from worker.trees.git_process import GitError, git

_SHOWN_PATHS = 3
_IDENTITY = {"GIT_AUTHOR_NAME": "Mull", "GIT_AUTHOR_EMAIL": "mull@localhost", "GIT_COMMITTER_NAME": "Mull",
             "GIT_COMMITTER_EMAIL": "mull@localhost"}


@dataclass(frozen=True)
class Start:
    sha: str  # the commit the run starts from, in the mirror
    head: str  # the checkout's HEAD commit
    branch: str | None  # the branch checked out; None when HEAD is detached
    uncommitted: tuple[str, ...]  # paths that differ from HEAD: changed, deleted, new (not ignored)
    included: bool  # whether those changes are part of the start

    def describe(self) -> str:
        """``HEAD 1a2b3c4 (main); 2 uncommitted changes (a.py, b.txt) are not included: ...``."""
        where = f"HEAD {self.head[:7]}" + (f" ({self.branch})" if self.branch else " (detached)")
        if not self.uncommitted:
            return where
        count = len(self.uncommitted)
        changes = f"{count} uncommitted change{'s' if count != 1 else ''} ({_some(self.uncommitted)})"
        if self.included:
            return f"{where} plus {changes}"
        them = "them" if count != 1 else "it"
        return (f"{where}; {changes} {'are' if count != 1 else 'is'} not included: commit {them} or pass "
                "--include-uncommitted")


def _some(paths: tuple[str, ...]) -> str:
    shown = ", ".join(paths[:_SHOWN_PATHS])
    return shown + (f" and {len(paths) - _SHOWN_PATHS} more" if len(paths) > _SHOWN_PATHS else "")


async def start_from(repo: Path, mirror: Path, ref: str, *, include_uncommitted: bool, scratch: Path) -> Start:
    """Fetch the checkout's HEAD into ``mirror`` as ``ref`` and, if asked, commit its uncommitted changes on
    top (``ref`` then names that commit). ``scratch`` is a directory of Mull's for the private index."""
    try:
        await git("fetch", "--quiet", "--no-tags", "--no-recurse-submodules", str(repo.resolve()), f"+HEAD:{ref}",
                  git_dir=mirror)
    except GitError as exc:
        raise ConfigError(f"--repo {repo}: cannot read its last commit ({exc}); a repository needs at least one "
                          "commit") from None
    head = (await git("rev-parse", "--verify", f"{ref}^{{commit}}", git_dir=mirror)).strip()
    branch, changes = await _status(repo)
    paths = tuple(path for entry in changes for path in entry[:1])
    if not (include_uncommitted and changes):
        return Start(sha=head, head=head, branch=branch, uncommitted=paths, included=False)
    index = {"GIT_INDEX_FILE": str(scratch / "uncommitted.index")}
    await git("read-tree", head, git_dir=mirror, env=index)
    # Directories are submodules or nested repositories: their commits are not the checkout's to include.
    touched = [path for entry in changes for path in entry if not _is_directory(repo / path)]
    await git("update-index", "--add", "--remove", "-z", "--stdin", git_dir=mirror, work_tree=repo.resolve(),
              env=index, stdin=b"".join(os.fsencode(path) + b"\0" for path in touched))
    tree = (await git("write-tree", git_dir=mirror, env=index)).strip()
    sha = (await git("commit-tree", tree, "-p", head, "-m", "Uncommitted changes of the checkout", git_dir=mirror,
                     env=_IDENTITY)).strip()
    await git("update-ref", ref, sha, git_dir=mirror)
    return Start(sha=sha, head=head, branch=branch, uncommitted=paths, included=True)


def _is_directory(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


async def _status(repo: Path) -> tuple[str | None, list[tuple[str, ...]]]:
    """The branch checked out, and each change as its paths (a rename: new path, old path)."""
    out = await _users_git(repo, "status", "--porcelain=v1", "-z", "--branch", "--untracked-files=all")
    fields = out.split("\0")
    branch: str | None = None
    changes: list[tuple[str, ...]] = []
    position = 0
    while position < len(fields):
        field = fields[position]
        position += 1
        if not field:
            continue
        if field.startswith("## "):
            branch = _branch_of(field[3:])
            continue
        code, path = field[:2], field[3:]
        if code[0] in "RC" or code[1] in "RC":
            changes.append((path, fields[position]))  # the old path follows as its own field
            position += 1
        elif code != "!!":
            changes.append((path,))
    return branch, changes


def _branch_of(line: str) -> str | None:
    """``main...origin/main [ahead 1]`` → main; ``HEAD (no branch)`` → None."""
    name = line.split("...", 1)[0].split(" ", 1)[0]
    return None if name == "HEAD" else name or None


async def _users_git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        env.pop(name, None)
    process = await asyncio.create_subprocess_exec(
        "git", "-C", str(repo), *args, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    if process.returncode != 0:
        raise ConfigError(f"--repo {repo}: git status failed: {err.decode(errors='replace').strip()}")
    return out.decode(errors="surrogateescape")
