"""Pull request diffs for the GitHub double, computed with git from the bare repository.

A PR's diff is GitHub's three-dot one: merge-base(base, head)...head. Results for a sha pair never change,
so they are cached. Review comments anchor to lines of these diffs: RIGHT-side lines are added or context
lines inside a hunk, LEFT-side lines deleted or context ones, and ``position`` counts patch lines from the
file's first ``@@`` header (GitHub's legacy addressing).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import bare_repo
from .github_records import ReviewComment
from .github_state import Pull, Repo

_HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@")
_STATUS = {"A": "added", "D": "removed", "M": "modified", "R": "renamed", "C": "copied", "T": "changed"}


@dataclass(frozen=True)
class DiffLine:
    hunk: int
    position: int
    text: str


@dataclass
class FileDiff:
    filename: str
    status: str  # added | removed | modified | renamed | copied | changed
    sha: str  # blob at head (at base for removed files)
    previous_filename: str | None = None
    patch: str | None = None  # hunks only, GitHub's ``patch``; None for binary or content-less changes
    binary: bool = False
    additions: int = 0
    deletions: int = 0
    right: dict[int, DiffLine] = field(default_factory=dict)
    left: dict[int, DiffLine] = field(default_factory=dict)

    @property
    def changes(self) -> int:
        return self.additions + self.deletions

    def side(self, side: str) -> dict[int, DiffLine]:
        return self.left if side == "LEFT" else self.right

    def diff_hunk(self, position: int) -> str:
        """The patch from the header of the hunk holding ``position`` down to that line (GitHub's diff_hunk)."""
        lines = (self.patch or "").split("\n")
        start = max(i for i in range(position + 1) if lines[i].startswith("@@"))
        return "\n".join(lines[start:position + 1])

    def line_at(self, position: int) -> tuple[str, int] | None:
        """(side, line) of a patch position, preferring RIGHT like GitHub; None for headers and gaps."""
        for side in ("RIGHT", "LEFT"):
            for number, line in self.side(side).items():
                if line.position == position:
                    return side, number
        return None


def _parse_patch(fd: FileDiff) -> None:
    hunk, left_no, right_no = -1, 0, 0
    for position, text in enumerate((fd.patch or "").split("\n")):
        match = _HUNK.match(text)
        if match:
            hunk, left_no, right_no = hunk + 1, int(match[1]), int(match[2])
            continue
        tag, body = text[:1], text[1:]
        if tag in ("+", " "):
            fd.right[right_no] = DiffLine(hunk, position, body)
            right_no += 1
            fd.additions += tag == "+"
        if tag in ("-", " "):
            fd.left[left_no] = DiffLine(hunk, position, body)
            left_no += 1
            fd.deletions += tag == "-"


@functools.lru_cache(maxsize=256)
def merge_base(path: Path, a: str, b: str) -> str | None:
    return bare_repo.merge_base(path, a, b)


@functools.lru_cache(maxsize=128)
def unified_diff(path: Path, base: str, head: str) -> str:
    """``git diff`` of two commits, as GitHub's ``application/vnd.github.diff`` media type answers."""
    return bare_repo.git(path, "diff", "--no-color", "--no-ext-diff", "-M", base, head)


@functools.lru_cache(maxsize=128)
def diff_files(path: Path, base: str, head: str) -> tuple[FileDiff, ...]:
    """The files of ``base...head`` (already a merge base) with their patches, in git's (path) order."""
    raw = bare_repo.git(path, "diff", "--raw", "-z", "--no-abbrev", "-M", base, head).split("\0")
    files, i = [], 0
    while i < len(raw) and raw[i].startswith(":"):
        _, _, old_sha, new_sha, status = raw[i][1:].split()
        letter = status[0]
        if letter in "RC":
            previous, name, i = raw[i + 1], raw[i + 2], i + 3
        else:
            previous, name, i = None, raw[i + 1], i + 2
        files.append(FileDiff(name, _STATUS.get(letter, "modified"), old_sha if letter == "D" else new_sha,
                              previous))
    chunks = [c for c in re.split(r"(?m)^(?=diff --git )", unified_diff(path, base, head)) if c]
    for fd, chunk in zip(files, chunks, strict=False):
        lines = chunk.rstrip("\n").split("\n")
        first = next((n for n, line in enumerate(lines) if line.startswith("@@ ")), None)
        head_lines = lines if first is None else lines[:first]
        fd.binary = any(line.startswith(("Binary files ", "GIT binary patch")) for line in head_lines)
        if first is not None:
            fd.patch = "\n".join(lines[first:])
            _parse_patch(fd)
    return tuple(files)


@functools.lru_cache(maxsize=256)
def commit_count(path: Path, base: str, head: str) -> int:
    return int(bare_repo.git(path, "rev-list", "--count", f"{base}..{head}").strip() or 0)


def diff_stats(path: Path, base_tip: str, head: str) -> dict[str, int]:
    """The ``commits``/``additions``/``deletions``/``changed_files`` of a PR's JSON."""
    base = merge_base(path, base_tip, head) or base_tip
    files = diff_files(path, base, head)
    return {"commits": commit_count(path, base, head), "additions": sum(f.additions for f in files),
            "deletions": sum(f.deletions for f in files), "changed_files": len(files)}


def pull_range(repo: Repo, pull: Pull) -> tuple[str, str]:
    """(merge base, head) of a PR: live branches while open, the merged-in commits once merged."""
    if pull.merged:
        head, tip = pull.head_sha, pull.merged_base_sha or pull.head_sha
    else:
        head = bare_repo.rev_parse(repo.path, f"refs/heads/{pull.head_ref}") or pull.head_sha
        tip = bare_repo.rev_parse(repo.path, f"refs/heads/{pull.base_ref}") or head
    return merge_base(repo.path, tip, head) or tip, head


def pull_files(repo: Repo, pull: Pull, head: str | None = None) -> tuple[FileDiff, ...]:
    """The PR's files, at its current head or at an earlier ``head`` commit of it."""
    base, current = pull_range(repo, pull)
    if head is not None and head != current:
        base = merge_base(repo.path, base, head) or base
    return diff_files(repo.path, base, head or current)


@dataclass(frozen=True)
class Anchor:
    commit_id: str
    line: int | None  # None once outdated
    start_line: int | None
    position: int | None
    outdated: bool


def anchor(repo: Repo, pull: Pull, comment: ReviewComment) -> Anchor:
    """Where a review comment sits at the PR's current head: same line, moved with its text, or outdated."""
    _, head = pull_range(repo, pull)
    if head == comment.commit_id:
        return Anchor(head, comment.line, comment.start_line, comment.position, False)
    fd = next((f for f in pull_files(repo, pull) if f.filename == comment.path), None)
    lines = fd.side(comment.side) if fd else {}
    if comment.line in lines and lines[comment.line].text == comment.anchor_text:
        line = comment.line
    else:
        same = [n for n, dl in lines.items() if dl.text == comment.anchor_text]
        if len(same) != 1:
            return Anchor(comment.commit_id, None, None, None, True)
        line = same[0]
    start = comment.start_line + line - comment.line if comment.start_line is not None else None
    return Anchor(head, line, start, lines[line].position, False)


def commits_between(path: Path, base: str, head: str) -> list[dict]:
    """Oldest-first commits of ``base..head``: sha, tree, parents, author/committer name, email, date, message."""
    return _log(path, "--reverse", f"{base}..{head}")


def commit_info(path: Path, sha: str) -> dict:
    return _log(path, "-1", sha)[0]


def _log(path: Path, *revs: str) -> list[dict]:
    fmt = "%H%x00%T%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%B%x1e"
    out = bare_repo.git(path, "log", f"--format={fmt}", *revs)
    keys = ("sha", "tree", "parents", "author_name", "author_email", "date", "committer_name",
            "committer_email", "committer_date", "message")
    commits = []
    for record in filter(None, (r.strip("\n") for r in out.split("\x1e"))):
        commit = dict(zip(keys, record.split("\x00", 9), strict=True))
        commit["parents"] = commit["parents"].split()  # type: ignore[assignment]
        commit["message"] = commit["message"].strip()
        commits.append(commit)
    return commits
