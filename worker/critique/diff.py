"""A pull request's changed files, from GitHub's files API or from a local ``git diff``, in one shape.

``patch`` holds the hunks only (from the first ``@@``), as GitHub's ``/pulls/N/files`` does, so the rest of
the critique never cares where the diff came from. Lines are split on ``\\n`` only: ``str.splitlines``
would also split on form feeds and Unicode separators inside changed lines and misnumber everything after.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["added", "modified", "removed", "renamed"]

# How the worker should run git so that from_git_diff reads it: fixed prefixes whatever the user's config
# says (diff.noprefix, diff.mnemonicPrefix), no colour or external diff driver, renames detected.
GIT_DIFF_ARGS = ("diff", "--no-color", "--no-ext-diff", "--find-renames", "--src-prefix=a/", "--dst-prefix=b/")

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_GITHUB_STATUS: dict[str, Status] = {"added": "added", "removed": "removed", "modified": "modified",
                                     "renamed": "renamed", "copied": "added", "changed": "modified",
                                     "unchanged": "modified"}
_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


@dataclass(frozen=True)
class FileDiff:
    path: str  # the new path (the old one for a removed file)
    status: Status
    patch: str | None  # hunks only; None when binary or too large for GitHub to send
    additions: int
    deletions: int
    previous_path: str | None = None  # renames and copies
    binary: bool = False


def lines_of(patch: str) -> list[str]:
    lines = patch.split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def right_side_ranges(patch: str | None) -> tuple[range, ...]:
    """New-file lines of each hunk (its context and added lines), the only lines a review may comment on.

    Within one hunk they are contiguous, so a range per hunk says both which lines and which hunk.
    """
    if not patch:
        return ()
    ranges: list[range] = []
    first = line_no = None
    for line in lines_of(patch):
        header = _HUNK.match(line)
        if header:
            if first is not None and line_no is not None and line_no > first:
                ranges.append(range(first, line_no))
            first = line_no = int(header.group(3))
        elif line_no is not None and (line.startswith((" ", "+")) or line == ""):
            line_no += 1
    if first is not None and line_no is not None and line_no > first:
        ranges.append(range(first, line_no))
    return tuple(ranges)


def right_side_lines(patch: str | None) -> set[int]:
    """New-file line numbers that appear in the diff: added and context lines, never deleted ones."""
    return {number for lines in right_side_ranges(patch) for number in lines}


def from_github_files(items: Iterable[Mapping[str, Any]]) -> tuple[FileDiff, ...]:
    """Items of ``GET /repos/{o}/{r}/pulls/{n}/files``.

    GitHub omits ``patch`` both for binary files and for diffs too large to send; a binary file is the one
    with no patch and no changed lines (an empty new text file looks the same, and is called binary too).
    """
    files = []
    for item in items:
        status = _GITHUB_STATUS.get(str(item.get("status", "modified")), "modified")
        patch = item.get("patch")
        additions, deletions = int(item.get("additions", 0)), int(item.get("deletions", 0))
        changed = int(item.get("changes", additions + deletions))
        pure_rename = status == "renamed" and changed == 0
        binary = patch is None and changed == 0 and not pure_rename
        files.append(FileDiff(
            path=str(item["filename"]), status=status, patch="" if pure_rename and patch is None else patch,
            additions=additions, deletions=deletions, previous_path=item.get("previous_filename"), binary=binary,
        ))
    return tuple(files)


def from_git_diff(text: str) -> tuple[FileDiff, ...]:
    """``git diff`` unified output (run with GIT_DIFF_ARGS), one FileDiff per ``diff --git`` section."""
    return tuple(_parse_section(section) for section in _sections(lines_of(text)))


def _sections(lines: list[str]) -> Iterator[list[str]]:
    """Content lines always start with a prefix character, so ``diff --git`` at column 0 is a header."""
    current: list[str] = []
    for line in lines:
        if line.startswith("diff --git ") and current:
            yield current
            current = []
        if current or line.startswith("diff --git "):
            current.append(line)
    if current:
        yield current


def _parse_section(section: list[str]) -> FileDiff:
    old, new = _header_paths(section[0][len("diff --git "):])
    status: Status = "modified"
    previous: str | None = None
    binary = False
    body_at = len(section)
    for index, line in enumerate(section[1:], start=1):
        if line.startswith("@@ "):
            body_at = index
            break
        if line.startswith("new file mode"):
            status = "added"
        elif line.startswith("deleted file mode"):
            status = "removed"
        elif line.startswith(("rename from ", "copy from ")):
            previous = _unquote(line.split(" ", 2)[2])
            status = "renamed" if line.startswith("rename") else "added"
        elif line.startswith(("rename to ", "copy to ")):
            new = _unquote(line.split(" ", 2)[2])
        elif line.startswith("--- ") and line[4:] != "/dev/null":
            old = _strip_prefix(_unquote(line[4:].removesuffix("\t")))
        elif line.startswith("+++ ") and line[4:] != "/dev/null":
            new = _strip_prefix(_unquote(line[4:].removesuffix("\t")))
        elif line.startswith(("Binary files ", "GIT binary patch")):
            binary = True
    body = section[body_at:]
    additions = sum(1 for line in body if line.startswith("+"))
    deletions = sum(1 for line in body if line.startswith("-"))
    patch = None if binary else "\n".join(body) + ("\n" if body else "")
    path = old if status == "removed" else new
    return FileDiff(path=path, status=status, patch=patch, additions=additions, deletions=deletions,
                    previous_path=previous, binary=binary)


def _header_paths(rest: str) -> tuple[str, str]:
    """The two paths of ``diff --git a/X b/Y``, which git quotes only when they hold special characters."""
    if rest.startswith('"'):
        end = _closing_quote(rest)
        first, second = rest[:end + 1], rest[end + 2:]
    elif rest.endswith('"'):
        split = rest.rfind(' "')
        first, second = rest[:split], rest[split + 1:]
    else:
        half = (len(rest) - 1) // 2
        if len(rest) % 2 == 1 and rest[half] == " " and rest[2:half] == rest[half + 3:]:
            first, second = rest[:half], rest[half + 1:]  # same path twice: spaces in it are no problem
        else:
            first, _, tail = rest.partition(" b/")
            second = "b/" + tail
    return _strip_prefix(_unquote(first)), _strip_prefix(_unquote(second))


def _closing_quote(text: str) -> int:
    index = 1
    while index < len(text):
        if text[index] == "\\":
            index += 2
            continue
        if text[index] == '"':
            return index
        index += 1
    return len(text) - 1


def _strip_prefix(path: str) -> str:
    return path[2:] if path.startswith(("a/", "b/")) else path


def _unquote(text: str) -> str:
    """Git's C-style quoting: ``"t\\303\\251st.txt"`` is ``tést.txt`` (octal escapes are UTF-8 bytes)."""
    if len(text) < 2 or not (text.startswith('"') and text.endswith('"')):
        return text
    body, out, index = text[1:-1], bytearray(), 0
    while index < len(body):
        char = body[index]
        if char != "\\" or index + 1 == len(body):
            out += char.encode()
            index += 1
        elif body[index + 1] in "01234567":
            digits = re.match(r"[0-7]{1,3}", body[index + 1:])
            assert digits is not None
            out.append(int(digits.group(), 8) & 0xFF)
            index += 1 + len(digits.group())
        else:
            out.append(_ESCAPES.get(body[index + 1], ord(body[index + 1])))
            index += 2
    return out.decode("utf-8", errors="replace")
