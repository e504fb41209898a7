"""What one ``mull try`` run ended with, and its words: the end summary, the one-line form, the critique.

Kept apart from how it is shown (``worker/local_try/display.py``), so a terminal and a pipe say the same things:
what the agent said, which files it changed, the tokens and time it took, and where the patch and tree are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from worker.agent.base import AgentResult
from worker.agent.project_commands import ProjectRun, SetupFailed
from worker.critique.diff import FileDiff
from worker.critique.run import CritiqueFailed, CritiqueOutcome
from worker.gateway.runs import RunUsage
from worker.local_try.start import Start

_SAID_CHARS = 160
_STATUS_LETTER = {"added": "A", "modified": "M", "removed": "D", "renamed": "R"}


@dataclass(frozen=True)
class TryReport:
    start: Start
    result: AgentResult
    patch: str  # applies with `git apply` to the checkout; empty when the agent changed nothing
    files: tuple[FileDiff, ...]
    usage: RunUsage  # the agent's model requests and tokens, as the gateway counted them
    seconds: float
    patch_file: Path | None = None  # where the patch was written (--patch, or a file of its own on a terminal)
    patch_shown: bool = True  # whether the patch is shown too (not when --patch asked for a file instead)
    kept_tree: Path | None = None  # the agent's tree, kept (--keep)
    critique: CritiqueOutcome | None = None  # --critique, when there was a change to critique
    tests: ProjectRun | None = None  # Mull's run of the repository's `test:` on the agent's commit
    test_command: str | None = None  # the repository's `test:`; None: it sets none

    @property
    def stopped(self) -> str | None:
        """Why the agent did not finish, if it did not."""
        if self.result.budget_tripped:
            return f"stopped by its {self.result.budget_tripped} budget"
        return self.result.error


def tests_text(report: TryReport) -> str:
    """``tests passed (pytest -q, 4 s)`` / ``tests failed (…)``; empty when the repository sets no `test:`."""
    if report.test_command is None:
        return ""
    if report.tests is None:
        return "tests not run: the agent changed nothing"
    verdict = "passed" if report.tests.ok else "did not finish" if report.tests.timed_out else "failed"
    how = f"{report.tests.seconds:.0f} s" if report.tests.ok else report.tests.how()
    return f"tests {verdict} ({report.tests.command}, {how})"


def tests_tail(report: TryReport) -> list[str]:
    """The last lines of a failed test run's output, to show under its verdict."""
    if report.tests is None or report.tests.ok:
        return []
    return report.tests.tail.splitlines() or ["(no output)"]


def setup_failed(failure: SetupFailed) -> str:
    """Why the agent did not run: which setup command failed, how, the end of its output, and the fix."""
    run = failure.run
    lines = [f"setup failed: `{run.command}` {run.how(failure.budget)}, so the agent did not run.",
             "last lines of its output:", *(f"  {line}" for line in (run.tail.splitlines() or ["(no output)"]))]
    if run.blocked:
        lines.append(refused(run.blocked))
    lines.append("fix `setup:` in .github/mull.yml (commit it, or pass --include-uncommitted), then try again")
    return "\n".join(lines)


def refused(blocked: tuple[tuple[str, int], ...]) -> str:
    """``refused connections: host:443 × 2, …``: what the egress proxy turned away."""
    return "refused connections: " + ", ".join(f"{target} × {count}" for target, count in blocked)


def said(result: AgentResult) -> str:
    """The first line of what the agent said, short enough for one line."""
    first = next((line.strip().lstrip("#").strip() for line in result.summary.splitlines() if line.strip()), "")
    return first if len(first) <= _SAID_CHARS else first[:_SAID_CHARS - 1] + "…"


def changes(files: tuple[FileDiff, ...]) -> str:
    """``2 files changed (+12 -3)``, or ``no changes``."""
    if not files:
        return "no changes"
    added = sum(f.additions for f in files)
    removed = sum(f.deletions for f in files)
    return f"{len(files)} file{'s' if len(files) != 1 else ''} changed (+{added} -{removed})"


def file_line(diff: FileDiff) -> str:
    """``M app.py +1 -1``; ``R new.py (from old.py)``; ``A logo.png (binary)``."""
    where = diff.path + (f" (from {diff.previous_path})" if diff.previous_path else "")
    counts = " (binary)" if diff.binary else f" +{diff.additions} -{diff.deletions}"
    return f"{_STATUS_LETTER[diff.status]} {where}{counts}"


def usage_text(usage: RunUsage, seconds: float) -> str:
    """``4 model requests, 1,812 tokens (1,700 in, 112 out), 12.3 s``."""
    estimated = ", estimated" if usage.estimated else ""
    return (f"{usage.requests} model request{'s' if usage.requests != 1 else ''}, {usage.total_tokens:,} tokens "
            f"({usage.input_tokens:,} in, {usage.output_tokens:,} out{estimated}), {seconds:.1f} s")


def one_line(report: TryReport) -> str:
    """The whole run in one line, for stderr when stdout is a pipe."""
    parts = [changes(report.files) if report.patch else "the agent changed nothing",
             usage_text(report.usage, report.seconds)]
    if report.stopped:
        parts.append(report.stopped)
    if tests_text(report):
        parts.append(tests_text(report))
    if report.result.blocked:
        parts.append(refused(report.result.blocked))
    if report.patch_file and report.patch:
        parts.append(f"patch written to {report.patch_file}")
    if report.kept_tree:
        parts.append(f"tree kept at {report.kept_tree}")
    if report.critique is not None:
        parts.append(verdict(report.critique))
    text = "; ".join(parts)
    words = said(report.result)
    return f"mull try: {text}" + (f"; the agent said: {words}" if words else "")


def verdict(outcome: CritiqueOutcome) -> str:
    if isinstance(outcome, CritiqueFailed):
        return outcome.reason
    critique = outcome.critique
    return f"critique: {critique.verdict} (review effort {critique.effort}/5, {len(critique.findings)} findings)"


def critique_lines(outcome: CritiqueOutcome) -> list[str]:
    """The verdict and every comment, as plain lines."""
    if isinstance(outcome, CritiqueFailed):
        return [outcome.reason]
    critique = outcome.critique
    tests = critique.tests + (f" ({critique.tests_note})" if critique.tests_note else "")
    lines = [f"critique: {critique.verdict} · review effort {critique.effort}/5 · tests: {tests}"]
    lines += [f"  {line}" for line in critique.summary.splitlines()]
    for number, finding in enumerate(critique.findings, start=1):
        span = f"{finding.start_line}" if finding.start_line == finding.end_line else \
            f"{finding.start_line}-{finding.end_line}"
        lines.append(f"  {number}. {finding.path}:{span} ({finding.severity}) {finding.title}")
        lines.append(f"     why: {' '.join(finding.why.split())}")
        lines.append(f"     fix: {' '.join(finding.suggestion.split())}")
    lines += [f"  risk: {risk}" for risk in critique.risks]
    lines += [f"  security: {item}" for item in critique.security]
    if critique.details.strip():
        lines += [f"  {line}" for line in critique.details.strip().splitlines()]
    return lines
