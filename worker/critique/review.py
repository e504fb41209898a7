"""Which findings become inline review comments, and those comments in the shape GitHub's review API takes.

GitHub only accepts a review comment on a line of the diff's right side (an added or context line of
the new file, inside a hunk), and a multi-line comment only when both ends are in the same hunk; anything
else makes it refuse the whole review. So a finding is anchored to the part of its range that lies in
the last diff hunk it overlaps (its body still states the full range); a finding that overlaps no hunk
stays in the summary comment only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from worker.critique.diff import FileDiff, right_side_ranges
from worker.critique.schema import Critique, Finding
from worker.views import defuse


@dataclass(frozen=True)
class Split:
    inline: tuple[dict[str, Any], ...]  # items for the ``comments`` of POST /repos/{o}/{r}/pulls/{n}/reviews
    summary_only: tuple[Finding, ...]  # findings that can only be read in the critique comment


def split_findings(critique: Critique, files: Sequence[FileDiff]) -> Split:
    """``files`` is every changed file (left-out ones too: the critic may have read them with its tools)."""
    by_path = {file.path: file for file in files}
    inline: list[dict[str, Any]] = []
    summary_only: list[Finding] = []
    for finding in critique.findings:
        file = _file_for(finding.path, by_path)
        comment = _inline(finding, file) if file else None
        if comment is None:
            summary_only.append(finding)
        else:
            inline.append(comment)
    return Split(inline=tuple(inline), summary_only=tuple(summary_only))


def finding_body(finding: Finding, shown: range | None = None) -> str:
    """Markdown of one finding; says the full range when the comment covers only part of it."""
    where = line_span(finding.start_line, finding.end_line)
    note = ""
    if shown is not None and (shown.start, shown.stop - 1) != (finding.start_line, finding.end_line):
        verb = "is" if len(shown) == 1 else "are"
        note = f" ({where}; only {line_span(shown.start, shown.stop - 1)} {verb} in the diff)"
    return (f"**{finding.severity}** · **{safe(finding.title)}**{note}\n\n{safe(finding.why)}\n\n"
            f"**Suggested fix:** {safe(finding.suggestion)}")


def safe(text: str) -> str:
    """Model text made inert (``worker.views.defuse``): no HTML comment to hide the rest, no mention, no closing
    keyword."""
    return defuse.markdown(text.strip())


def _inline(finding: Finding, file: FileDiff) -> dict[str, Any] | None:
    overlaps = [range(max(finding.start_line, hunk.start), min(finding.end_line, hunk.stop - 1) + 1)
                for hunk in right_side_ranges(file.patch)]
    overlaps = [part for part in overlaps if len(part) > 0]
    if not overlaps:
        return None
    shown = overlaps[-1]
    comment: dict[str, Any] = {"path": file.path, "line": shown.stop - 1, "side": "RIGHT",
                               "body": finding_body(finding, shown)}
    if len(shown) > 1:
        comment.update(start_line=shown.start, start_side="RIGHT")
    return comment


def _file_for(path: str, by_path: dict[str, FileDiff]) -> FileDiff | None:
    """Models copy paths from diff headers, so ``b/src/x.py`` means ``src/x.py`` unless that exists."""
    if path in by_path:
        return by_path[path]
    if path.startswith(("a/", "b/")):
        return by_path.get(path[2:])
    return None


def line_span(start: int, end: int) -> str:
    """``line 7`` or ``lines 7–9``."""
    return f"line {start}" if start == end else f"lines {start}–{end}"
