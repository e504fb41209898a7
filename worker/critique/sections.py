"""How one changed file appears in the critique prompt: its diff, or a line saying why it was left out.

budget.py prices exactly this text and prompt.py prints exactly this text, so the prompt's size is known
before it is built. Diff lines carry their new-file line number, because models asked to cite lines
cannot be trusted to count from hunk headers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from worker.critique.diff import FileDiff, lines_of

_WIDTH = 5  # line-number column; wider numbers just push the line right
_HUNK_PREFIX = "@@ "


@dataclass(frozen=True)
class LeftOut:
    """A changed file whose diff the critic did not get, and why."""

    path: str
    reason: str
    additions: int = 0
    deletions: int = 0


def file_section(file: FileDiff) -> str:
    heading = f"### {file.path} ({describe(file)})"
    if not file.patch:
        return f"{heading}\n(no content changes)"
    return f"{heading}\n```diff\n{numbered(file.patch)}\n```"


def describe(file: FileDiff) -> str:
    """``modified, +3 -1`` or ``renamed from old.py, +0 -0``."""
    status = f"renamed from {file.previous_path}" if file.status == "renamed" and file.previous_path else file.status
    return f"{status}, +{file.additions} -{file.deletions}"


def numbered(patch: str) -> str:
    """The patch with a new-file line-number column; deleted lines get a blank one."""
    out: list[str] = []
    line_no: int | None = None
    blank = " " * _WIDTH
    for line in lines_of(patch):
        if line.startswith(_HUNK_PREFIX):
            out.append(line)
            line_no = _new_start(line)
        elif line_no is not None and (line.startswith((" ", "+")) or line == ""):
            out.append(f"{line_no:>{_WIDTH}} {line}")
            line_no += 1
        else:  # deleted lines and "\ No newline at end of file"
            out.append(f"{blank} {line}")
    return "\n".join(out)


def left_out_line(item: LeftOut) -> str:
    counts = f" (+{item.additions} -{item.deletions})" if item.additions or item.deletions else ""
    return f"- {item.path}{counts}: {item.reason}"


def left_out_block(left_out: Sequence[LeftOut], listed: int) -> str:
    """The first ``listed`` entries one per line, then a count by reason of the rest: never a silent cut."""
    if not left_out:
        return "Every changed file's diff is shown above."
    lines = [f"Changed files whose diff is NOT shown above ({len(left_out)}). Do not guess what they contain; "
             "read them with your tools if you need to:"]
    lines += [left_out_line(item) for item in left_out[:listed]]
    rest = left_out[listed:]
    if rest:
        counts = Counter(item.reason for item in rest)
        by_reason = ", ".join(f"{count} {reason}" for reason, count in counts.most_common())
        lines.append(f"- … and {len(rest)} more files not listed here to save tokens ({by_reason}); if you have "
                     "a changed_files tool, it lists every file.")
    return "\n".join(lines)


def _new_start(header: str) -> int:
    plus = header.split(" +", 1)[1] if " +" in header else "1"
    digits = plus.split(",", 1)[0].split(" ", 1)[0]
    return int(digits) if digits.isdigit() else 1
