"""The command backend: run a CLI coding agent (aider, Claude Code, codex, ...) in the worktree.

The template is split like a shell would but never run through one, so a prompt path with spaces stays
one argument and nothing in the issue can reach a shell. CLI agents exit 0 even when they fail, so the
worker judges the run by the diff; this backend only reports what the agent printed.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import tempfile
from collections.abc import Mapping
from pathlib import Path

from worker.agent import sandbox
from worker.agent.base import AgentResult, AgentTask, Budget, format_seconds

PLACEHOLDERS = ("prompt_file", "worktree", "summary_file")
OUTPUT_LIMIT = 60_000
SUMMARY_LINES = 60
SUMMARY_LIMIT = 20_000  # characters of a {summary_file} kept for the PR body
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class TemplateError(ValueError):
    """MULL_AGENT_COMMAND is unusable; the message says what to change."""


def render(template: str, prompt_file: Path, worktree: Path, summary_file: Path | None = None) -> list[str]:
    """``template`` as argv, placeholders substituted inside each argument."""
    try:
        parts = shlex.split(template)
    except ValueError as exc:
        raise TemplateError(f"MULL_AGENT_COMMAND cannot be parsed ({exc}): check its quotes") from None
    if not parts:
        raise TemplateError("MULL_AGENT_COMMAND is empty: set a command with {prompt_file}, or a preset name")
    names = {match.group(1) for part in parts for match in _PLACEHOLDER.finditer(part)}
    allowed = ", ".join(f"{{{name}}}" for name in PLACEHOLDERS)
    unknown = sorted(names - set(PLACEHOLDERS))
    if unknown:
        raise TemplateError(f"MULL_AGENT_COMMAND has an unknown placeholder {{{unknown[0]}}}; "
                            f"allowed: {allowed}")
    if "prompt_file" not in names:
        raise TemplateError(
            "MULL_AGENT_COMMAND must contain {prompt_file}: the path of the file holding the task prompt, "
            "e.g. 'aider --yes-always --message-file {prompt_file}'"
        )
    values = {"prompt_file": str(prompt_file), "worktree": str(worktree),
              "summary_file": str(summary_file) if summary_file else ""}
    return [_PLACEHOLDER.sub(lambda match: values[match.group(1)], part) for part in parts]


class CommandAgent:
    def __init__(self, template: str, env: Mapping[str, str] | None = None) -> None:
        render(template, Path("prompt"), Path("worktree"), Path("summary"))  # fail at startup, not per run
        self.template = template
        self.env = dict(env or {})
        sandbox.clean_env(self.env)  # refuses MULL_*/GITHUB_* names now rather than on the first issue

    async def run(self, task: AgentTask, budget: Budget) -> AgentResult:
        with tempfile.TemporaryDirectory(prefix="mull-agent-") as scratch:
            # Outside the worktree, so the prompt never ends up in the commit.
            folder = Path(scratch)
            prompt_file = folder / "prompt.md"
            prompt_file.write_text(task.prompt, encoding="utf-8")
            summary_file = folder / "summary.md"
            summary_file.touch()
            argv = render(self.template, prompt_file, task.worktree, summary_file)
            spec = dataclasses.replace(
                task.sandbox,
                ro_paths=(*task.sandbox.ro_paths, folder),
                rw_paths=(*task.sandbox.rw_paths, summary_file),
                env={**task.sandbox.env, **self.env},
            )
            try:
                result = await sandbox.run_argv(argv, task.worktree, spec, budget.seconds, OUTPUT_LIMIT)
            except OSError as exc:
                failure = f"agent command could not start: {argv[0]}: {exc.strerror or exc}"
                return _result(f"The agent command did not run ({failure}).", None, failure)
            final = summary_file.read_text(encoding="utf-8", errors="replace").strip()[:SUMMARY_LIMIT]
        program = Path(argv[0]).name
        if result.timed_out:
            tripped = f"wall clock ({format_seconds(budget.seconds)} s)"
            return _result(_output_summary(program, f"was stopped: {tripped}", result.output), tripped, None)
        error = f"agent command exited with code {result.exit_code}" if result.exit_code else None
        if final:
            return _result(final, None, error)
        summary = _output_summary(program, f"exited with code {result.exit_code}", result.output)
        return _result(summary, None, error)


def _result(summary: str, tripped: str | None, error: str | None) -> AgentResult:
    return AgentResult(summary=summary, not_done=(), budget_tripped=tripped, error=error, steps=0, tokens=0)


def _output_summary(program: str, how: str, output: str) -> str:
    lines = output.rstrip().splitlines()[-SUMMARY_LINES:]
    if not lines:
        return f"The agent (`{program}`) {how} and printed nothing."
    text = "\n".join(lines)
    fence = "`" * max(3, _longest_backtick_run(text) + 1)
    return f"The agent (`{program}`) {how}. The last lines of its output:\n\n{fence}text\n{text}\n{fence}"


def _longest_backtick_run(text: str) -> int:
    return max((len(run) for run in re.findall(r"`+", text)), default=0)
