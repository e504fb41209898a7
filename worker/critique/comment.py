"""The one critique comment on a pull request: what the critic found, what it did not review, and a marker.

The hidden marker carries the head SHA, verdict and effort, so the worker can find its own comment, tell
whether the current head was already critiqued, and read the verdict back without parsing prose. It is the
comment's first line and counts only in a comment of Mull's bot (``worker.views.markers``). The
not-reviewed list is complete unless the comment would pass GitHub's size limit; then the rest is counted
by reason, never dropped silently.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from worker.critique.budget import Selection
from worker.critique.review import finding_body, line_span, safe
from worker.critique.schema import Critique
from worker.views import markers

KIND = "critique"
COMMENT_LIMIT = 60_000  # characters; GitHub refuses comment bodies over 65,536
FAILED = "failed"
_VERDICT_TITLE = {"pass": "✅ pass", "fix": "🔧 fix"}
_TESTS = {"covered": "covered", "partial": "partly covered", "none": "not covered", "unknown": "unknown"}


@dataclass(frozen=True)
class Marker:
    sha: str
    verdict: str  # "pass", "fix" or "failed"
    effort: int | None


def render_comment(critique: Critique, head_sha: str, selection: Selection, round_info: str = "",
                   session_url: str | None = None) -> str:
    """The comment body; ``round_info`` is the worker's line about revision rounds, shown as given;
    ``session_url`` (Mull's own address) links the critique's session page."""
    head = [marker(head_sha, critique.verdict, critique.effort),
            f"### Mull critique: {_VERDICT_TITLE[critique.verdict]}", "",
            *(f"> {safe(line)}" for line in critique.summary.splitlines()), "",
            " · ".join([f"**Review effort:** {critique.effort}/5", f"**Tests:** {_tests(critique)}",
                        f"**Commit:** `{head_sha[:12]}`"])]
    if round_info.strip():
        head += ["", round_info.strip()]
    if session_url:
        head += ["", f"[How the critic got there, step by step]({session_url})"]
    if critique.findings:
        head += ["", f"#### Findings ({len(critique.findings)})"]
        for number, finding in enumerate(critique.findings, start=1):
            body = "\n".join(f"   {line}" if line else "" for line in finding_body(finding).split("\n")).lstrip()
            head.append(f"{number}. `{finding.path}` {line_span(finding.start_line, finding.end_line)}: {body}")
    for title, items in (("Risks", critique.risks), ("Security", critique.security)):
        if items:
            head += ["", f"#### {title}", *(f"- {safe(item)}" for item in items)]
    if critique.details.strip():
        head += ["", safe(critique.details)]
    text = "\n".join(head)
    return text + _not_reviewed(selection, COMMENT_LIMIT - len(text)) + "\n"


def render_failure(reason: str, head_sha: str, session_url: str | None = None) -> str:
    """``critique failed: <reason>``, with the marker, so a later run knows this head was tried."""
    reason = reason.strip().removeprefix("critique failed:").strip() or "no reason given"
    session = f"\n[What the critic did, step by step]({session_url})\n" if session_url else ""
    return (f"{marker(head_sha, FAILED, None)}\n### Mull critique failed\n\n"
            f"critique failed: {safe(reason)} (commit `{head_sha[:12]}`)\n{session}")


def marker(head_sha: str, verdict: str, effort: int | None) -> str:
    return markers.dump(KIND, {"sha": head_sha, "verdict": verdict, "effort": effort})


def read_marker(comment: dict[str, Any], bot_login: str) -> Marker | None:
    """The marker of a critique comment Mull's bot wrote, or None."""
    return parse_marker(comment.get("body") or "") if markers.by_mull(comment, bot_login) else None


def parse_marker(body: str) -> Marker | None:
    """The marker on the first line of ``body`` (Mull writes it first), or None when there is none or it is damaged."""
    data = markers.load(KIND, body, "first")
    if not isinstance(data, dict):
        return None
    sha, verdict, effort = data.get("sha"), data.get("verdict"), data.get("effort")
    if not isinstance(sha, str) or verdict not in ("pass", "fix", FAILED):
        return None
    if effort is not None and (isinstance(effort, bool) or not isinstance(effort, int)):
        return None
    return Marker(sha=sha, verdict=verdict, effort=effort)


def _tests(critique: Critique) -> str:
    coverage = _TESTS[critique.tests]
    return f"{coverage} ({safe(critique.tests_note)})" if critique.tests_note else coverage


def _not_reviewed(selection: Selection, room: int) -> str:
    if not selection.left_out:
        return ""
    count = len(selection.left_out)
    head = (f"\n\n<details><summary>Not reviewed: {count} file{'s' if count != 1 else ''} whose diff the critic "
            "did not get</summary>\n\n")
    lines: list[str] = []
    used = len(head) + 200  # the closing tag and a counts line
    for item in selection.left_out:
        counts = f" (+{item.additions} -{item.deletions})" if item.additions or item.deletions else ""
        line = f"- `{item.path}`{counts}: {item.reason}"
        if used + len(line) + 1 > room:
            break
        lines.append(line)
        used += len(line) + 1
    rest = selection.left_out[len(lines):]
    if rest:
        by_reason = Counter(item.reason for item in rest).most_common()
        lines.append(f"- … and {len(rest)} more: " + ", ".join(f"{n} {reason}" for reason, n in by_reason))
    return head + "\n".join(lines) + "\n\n</details>"
