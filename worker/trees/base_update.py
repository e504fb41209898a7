"""Bringing a pull request's branch up to date with its base, in Mull's mirror alone: merge or rebase.

No working tree is involved, let alone one an agent wrote: ``git merge-tree --write-tree`` merges two commits
inside the mirror's object store, and ``git commit-tree`` records the result. A rebase replays each commit of
the branch the same way (a three-way merge of the commit's change onto the new base). When the change
conflicts, the result still gets a commit: its tree holds git's conflict markers in the files listed, and it
is what an agent revision starts from (a merge commit of head and base; for a rebase, one commit on the
base). Commits carry fixed dates derived from their inputs, so the same update made twice (a job that runs
again) is the same SHA.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from worker.trees.git_process import GitError, git, git_bytes

Mode = Literal["merge", "rebase"]
_SHA = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class Update:
    """The branch's new head, and the files whose changes conflicted (then ``sha`` holds conflict markers)."""

    sha: str
    conflicts: tuple[str, ...]


def _sha(text: str) -> str:
    sha = text.strip()
    if len(sha) not in (40, 64) or not set(sha) <= _SHA:
        raise GitError(f"expected a commit id, got {sha[:80]!r}")
    return sha


async def contains(mirror: Path, head: str, base: str) -> bool:
    """Whether ``head`` already holds every commit of ``base``: nothing to bring in."""
    found = (await git("merge-base", _sha(base), _sha(head), git_dir=mirror, check=False)).strip()
    return found == base


async def _merge_trees(mirror: Path, ours: str, theirs: str) -> tuple[str, tuple[str, ...]]:
    """The merged tree of two commits (their merge base found by git) and the conflicted paths."""
    out = await git_bytes("merge-tree", "--write-tree", "--name-only", "-z", "--no-messages", ours, theirs,
                          git_dir=mirror, exit_codes=(0, 1))
    fields = out.split(b"\0")
    tree = _sha(fields[0].decode())
    conflicts = tuple(dict.fromkeys(f.decode(errors="replace") for f in fields[1:] if f))
    return tree, conflicts


async def _date(mirror: Path, *commits: str) -> str:
    """A fixed date for a commit made from ``commits``: the latest of their committer dates."""
    out = await git("show", "-s", "--format=%ct", *commits, git_dir=mirror)
    return f"@{max(int(x) for x in out.split())} +0000"


async def _commit(mirror: Path, tree: str, parents: list[str], message: str, name: str, email: str, date: str,
                  author: tuple[str, str, str] | None = None) -> str:
    who = author or (name, email, date)
    env = {"GIT_AUTHOR_NAME": who[0], "GIT_AUTHOR_EMAIL": who[1], "GIT_AUTHOR_DATE": who[2],
           "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email, "GIT_COMMITTER_DATE": date}
    args = ["commit-tree", tree]
    for parent in parents:
        args += ["-p", parent]
    return _sha(await git(*args, git_dir=mirror, env=env, stdin=message.encode()))


async def merge(mirror: Path, head: str, base: str, message: str, name: str, email: str) -> Update:
    """A merge commit of ``base`` into ``head``."""
    head, base = _sha(head), _sha(base)
    tree, conflicts = await _merge_trees(mirror, head, base)
    sha = await _commit(mirror, tree, [head, base], message, name, email, await _date(mirror, head, base))
    return Update(sha, conflicts)


async def rebase(mirror: Path, head: str, base: str, message: str, name: str, email: str) -> Update:
    """``head``'s own commits replayed on ``base`` (merge commits dropped, as ``git rebase`` does); on a conflict,
    one commit on ``base`` holding the whole change with conflict markers (``message``), for a revision."""
    head, base = _sha(head), _sha(base)
    own = (await git("rev-list", "--reverse", "--no-merges", f"{base}..{head}", git_dir=mirror)).split()
    onto = base
    for commit in own:
        parent = _sha(await git("rev-parse", f"{commit}^", git_dir=mirror))
        # A commit with ``onto``'s tree on ``commit``'s parent: merging it with ``commit`` applies exactly the
        # commit's change to ``onto`` (their merge base is the parent), as a cherry-pick does.
        onto_tree = _sha(await git("rev-parse", f"{onto}^{{tree}}", git_dir=mirror))
        date = await _date(mirror, onto, commit)
        probe = await _commit(mirror, onto_tree, [parent], "probe\n", name, email, date)
        tree, conflicts = await _merge_trees(mirror, probe, commit)
        if conflicts:
            whole, conflicted = await _merge_trees(mirror, head, base)
            sha = await _commit(mirror, whole, [base], message, name, email, await _date(mirror, head, base))
            return Update(sha, conflicted or conflicts)
        author = (await git("show", "-s", "--format=%an%x00%ae%x00%at", commit, git_dir=mirror)).rstrip("\n")
        an, ae, at = author.split("\0")
        body = await git("show", "-s", "--format=%B", commit, git_dir=mirror)
        onto = await _commit(mirror, tree, [onto], body, name, email, date, (an, ae, f"@{int(at)} +0000"))
    return Update(onto, ())


async def update(mirror: Path, mode: Mode, head: str, base: str, base_name: str, name: str,
                 email: str) -> Update:
    """``head`` brought up to ``base`` by ``mode``."""
    if mode == "rebase":
        message = f"Rebase onto {base_name} ({base[:12]})\n"
        return await rebase(mirror, head, base, message, name, email)
    return await merge(mirror, head, base, f"Merge {base_name} ({base[:12]}) into the pull request\n", name, email)


async def markers_left(mirror: Path, commit: str, paths: tuple[str, ...]) -> tuple[str, ...]:
    """Which of ``paths`` still hold a conflict marker line at ``commit``."""
    if not paths:
        return ()
    out = await git_bytes("grep", "-l", "-z", "-I", "-E", "-e", "^(<<<<<<<|>>>>>>>) ", _sha(commit), "--",
                          *paths, git_dir=mirror, exit_codes=(0, 1), env={"GIT_LITERAL_PATHSPECS": "1"})
    prefix = f"{commit}:".encode()
    return tuple(f.removeprefix(prefix).decode(errors="replace") for f in out.split(b"\0") if f)
