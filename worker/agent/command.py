"""The command backend: run a CLI coding agent (aider, Claude Code, codex, ...) in the run's tree.

The template is split like a shell would but never run through one, so a prompt path with spaces stays
one argument and nothing in the issue can reach a shell. CLI agents exit 0 even when they fail, so the
worker judges the run by the diff; this backend only reports what the agent printed.

The agent's one way out is the model gateway (``ModelAccess``): its preset gets the gateway's URL, the run's
token and the model. The gateway counts its requests and tokens, so the step and token budgets hold for a
CLI agent too: when one is spent the gateway refuses, and Mull ends the agent shortly after.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import shlex
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from worker.agent import sandbox
from worker.agent.base import AgentResult, AgentTask, Budget, ModelAccess, format_seconds
from worker.agent.presets import Preset, gateway_env
from worker.trees.regular_file import NotRegular, read_head

PLACEHOLDERS = ("prompt_file", "worktree", "summary_file", "model")
OUTPUT_LIMIT = 60_000
SUMMARY_LINES = 60
SUMMARY_LIMIT = 20_000  # characters of a {summary_file} kept for the PR body
_SUMMARY_BYTES = SUMMARY_LIMIT * 4  # read at most this much of it: enough for SUMMARY_LIMIT characters of UTF-8
NOT_FOUND = 127  # what the shell, the bridge and bwrap's exec exit with when the program does not exist
BUDGET_GRACE = 5.0  # seconds an agent refused by the gateway gets to exit by itself before it is ended
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class TemplateError(ValueError):
    """MULL_AGENT_COMMAND is unusable; the message says what to change."""


def render(template: str, prompt_file: Path, worktree: Path, summary_file: Path | None = None,
           model: str = "") -> list[str]:
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
              "summary_file": str(summary_file) if summary_file else "", "model": model}
    return [_PLACEHOLDER.sub(lambda match: values[match.group(1)], part) for part in parts]


class CommandAgent:
    def __init__(self, preset: Preset) -> None:
        render(preset.template, Path("prompt"), Path("worktree"), Path("summary"))  # fail at startup, not per run
        self.preset = preset
        self.template = preset.template
        sandbox.clean_env(gateway_env(preset, "http://gateway", "token", "model"))  # refuses MULL_* names now

    async def run(self, task: AgentTask, budget: Budget) -> AgentResult:
        with tempfile.TemporaryDirectory(prefix="mull-agent-") as scratch:
            # Outside the tree, so the prompt never ends up in the commit.
            folder = Path(scratch)
            prompt_file = folder / "prompt.md"
            prompt_file.write_text(task.prompt, encoding="utf-8")
            summary_file = folder / "summary.md"
            summary_file.touch()
            argv = render(self.template, prompt_file, task.worktree, summary_file, task.model.model)
            port = sandbox.GATEWAY_PORT if task.sandbox.enabled else sandbox.free_port()
            env = gateway_env(self.preset, sandbox.gateway_url(port), task.model.token, task.model.model)
            spec = dataclasses.replace(
                task.sandbox,
                ro_paths=(*task.sandbox.ro_paths, folder),
                rw_paths=(*task.sandbox.rw_paths, summary_file),
                env={**task.sandbox.env, **env},
                gateway_socket=task.model.socket,
                gateway_port=port,
            )
            task.events.phase("agent command started")
            started = time.monotonic()
            try:
                result = await _within_budget(sandbox.run_argv(argv, task.worktree, spec, budget.seconds,
                                                               OUTPUT_LIMIT), task.model)
            except OSError as exc:
                failure = f"agent command could not start: {argv[0]}: {exc.strerror or exc}"
                task.events.phase(failure)
                return _result(f"The agent command did not run ({failure}).", None, failure, task.model)
            task.events.phase(f"agent command {_ending(result)} after {time.monotonic() - started:.1f} s")
            final = _summary(summary_file)
        program = Path(argv[0]).name
        spent = task.model.grant.usage.tripped
        if result is None or spent:
            tripped = spent or "steps"
            how = f"was stopped: the {tripped} budget ran out"
            return _result(final or _output_summary(program, how, ""), tripped, None, task.model)
        if result.timed_out:
            tripped = f"wall clock ({format_seconds(budget.seconds)} s)"
            return _result(_output_summary(program, f"was stopped: {tripped}", result.output), tripped, None,
                           task.model)
        error = f"agent command exited with code {result.exit_code}" if result.exit_code else None
        if result.exit_code == NOT_FOUND:
            error = (f"agent command could not start: {argv[0]}: not found in the sandbox; install it under a "
                     "directory listed in MULL_SANDBOX_RO_PATHS, or under /usr")
        if final:
            return _result(final, None, error, task.model)
        summary = _output_summary(program, f"exited with code {result.exit_code}", result.output)
        return _result(summary, None, error, task.model)


async def _within_budget(command: Coroutine[Any, Any, sandbox.CommandResult],
                         access: ModelAccess) -> sandbox.CommandResult | None:
    """The command's result, or None when the gateway refused a request for budget and the agent did not
    stop within BUDGET_GRACE (it is then killed, with its whole process group)."""
    running = asyncio.ensure_future(command)
    spent = asyncio.ensure_future(access.grant.out_of_budget.wait())
    try:
        await asyncio.wait({running, spent}, return_when=asyncio.FIRST_COMPLETED)
        if not running.done():
            done, _ = await asyncio.wait({running}, timeout=BUDGET_GRACE)
            if not done:
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running
                return None
        return running.result()
    finally:
        spent.cancel()
        if not running.done():
            running.cancel()


def _ending(result: sandbox.CommandResult | None) -> str:
    if result is None:
        return "was stopped: its budget ran out"
    if result.timed_out:
        return "was stopped: wall clock"
    return f"exited with code {result.exit_code}"


def _summary(path: Path) -> str:
    """What the agent wrote to {summary_file}, at most SUMMARY_LIMIT characters of it.

    The agent could make the file huge and sparse (free for it, costly to read whole) or, unconfined, a
    FIFO or a link: only its head is read, and only if it is still a regular file.
    """
    try:
        head, more = read_head(path, _SUMMARY_BYTES)
    except (NotRegular, OSError):
        return ""
    text = head.decode("utf-8", errors="replace").strip()
    if more or len(text) > SUMMARY_LIMIT:
        return text[:SUMMARY_LIMIT] + f"\n\n[the agent's summary was cut at {SUMMARY_LIMIT} characters]"
    return text


def _result(summary: str, tripped: str | None, error: str | None, access: ModelAccess) -> AgentResult:
    usage = access.grant.usage
    return AgentResult(summary=summary, not_done=(), budget_tripped=tripped, error=error, steps=usage.requests,
                       tokens=usage.total_tokens)


def _output_summary(program: str, how: str, output: str) -> str:
    lines = output.rstrip().splitlines()[-SUMMARY_LINES:]
    if not lines:
        return f"The agent (`{program}`) {how} and printed nothing."
    text = "\n".join(lines)
    fence = "`" * max(3, _longest_backtick_run(text) + 1)
    return f"The agent (`{program}`) {how}. The last lines of its output:\n\n{fence}text\n{text}\n{fence}"


def _longest_backtick_run(text: str) -> int:
    return max((len(run) for run in re.findall(r"`+", text)), default=0)
