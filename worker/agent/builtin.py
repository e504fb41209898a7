"""The builtin agent: pydantic-ai driving an OpenAI-compatible model with file and command tools.

The run itself (budgets, wall clock, errors) is worker/agent/model_run.py's; this module gives it the tools
and turns its outcome into an ``AgentResult``, because the worker still commits whatever the agent changed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import BaseModel, Field
from pydantic_ai import Agent as PydanticAgent
from pydantic_ai import RunContext, ToolOutput

from worker.agent import sandbox
from worker.agent.actions import ActionLog
from worker.agent.base import AgentResult, AgentTask, Budget, format_seconds
from worker.agent.events import NO_EVENTS, AgentEvents
from worker.agent.model_run import Ended, ModelRoute, RunLimits, run_agent
from worker.agent.model_text import tool_result
from worker.agent.workspace import Workspace

TOOL_RETRIES = 3  # malformed arguments the model may send for one tool before the run fails
NOT_DONE = "finish the task: the run ended before it was done"


class Finish(BaseModel):
    """Finish the task. Call this once, when the change is complete or you cannot go further."""

    summary: str = Field(description="What you changed and why, in Markdown, for the pull request body.")
    not_done: list[str] = Field(
        default_factory=list, description="Anything the issue asked for that you could not do; empty if none."
    )


@dataclass
class _Deps:
    workspace: Workspace
    sandbox: sandbox.SandboxSpec
    command_seconds: float
    log: ActionLog
    events: AgentEvents = NO_EVENTS  # who watches the run live, if anyone (``mull try``)
    # pydantic-ai runs one turn's tool calls concurrently. A command may rearrange the tree (a directory
    # swapped for a link) while a file tool, in the worker beside Mull's secrets, walks it; so a command
    # holds the tree for its whole life, and the file tools take it too, one at a time. A command's
    # processes are all dead when sandbox.run_command returns (its process group is killed and, under
    # bubblewrap, its PID namespace dies with it), so nothing of it is left to race a file tool.
    tree: asyncio.Lock = field(default_factory=asyncio.Lock)


class BuiltinAgent:
    def __init__(self, endpoint: str) -> None:
        self.base_url = endpoint  # named in error messages; requests go through the run's gateway

    async def run(self, task: AgentTask, budget: Budget) -> AgentResult:
        log = ActionLog()
        deps = _Deps(
            workspace=Workspace(task.worktree),
            # Mull makes the model calls; the commands it runs (the project's tests) have no way out at all.
            sandbox=dataclasses.replace(task.sandbox, gateway_socket=None),
            command_seconds=budget.command_seconds,
            log=log,
            events=task.events,
        )
        agent = PydanticAgent(output_type=ToolOutput(Finish, name="finish"), deps_type=_Deps, retries=TOOL_RETRIES,
                              tools=[list_files, read_file, search, edit_file, write_file, run_command])
        outcome = await run_agent(agent, task.prompt, deps=deps, route=ModelRoute.through_gateway(
            task.model, self.base_url), limits=RunLimits.of(budget))
        if isinstance(outcome, Ended):
            return _ended(outcome, log)
        finish = outcome.output
        return AgentResult(
            summary=finish.summary.strip() or log.summary("the model gave an empty summary"),
            not_done=tuple(item for item in finish.not_done if item.strip()),
            budget_tripped=None,
            error=None,
            steps=outcome.usage.steps,
            tokens=outcome.usage.tokens,
        )


def _ended(ended: Ended, log: ActionLog) -> AgentResult:
    """A run that stopped early: the summary is what the action log saw, and why it stopped."""
    if ended.reason in ("timeout", "usage_limit"):
        budget, error, why = ended.detail, None, f"budget exhausted: {ended.detail}"
    else:
        budget, error = None, _error(ended)
        why = error
    return AgentResult(summary=log.summary(why), not_done=(NOT_DONE,), budget_tripped=budget, error=error,
                       steps=ended.usage.steps, tokens=ended.usage.tokens)


def _error(ended: Ended) -> str:
    if ended.reason == "model_error":
        return ended.detail
    if ended.reason in ("bad_output", "invalid_output"):
        return f"model returned malformed output: {ended.detail}"
    return f"agent run failed: {ended.detail}"


# -- tools: errors go back to the model as text, so a wrong path or edit never ends the run ------------


async def list_files(ctx: RunContext[_Deps], path: str = ".") -> str:
    """List the files under a directory of the repository (recursively; directories end with /)."""
    ctx.deps.events.tool_called("list_files", path)
    return await _in_tree(ctx.deps, lambda: ctx.deps.workspace.list(path))


async def read_file(ctx: RunContext[_Deps], path: str, offset: int = 1, limit: int = 400) -> str:
    """Read a text file, as numbered lines starting at line `offset` (1-based), at most `limit` lines."""
    ctx.deps.events.tool_called("read_file", path if offset == 1 else f"{path} from line {offset}")
    return await _in_tree(ctx.deps, lambda: ctx.deps.workspace.read(path, offset, limit))


async def search(ctx: RunContext[_Deps], pattern: str, path: str = ".") -> str:
    """Search files for a Python regular expression; returns `path:line: text` for each match."""
    ctx.deps.events.tool_called("search", pattern if path == "." else f"{pattern} in {path}")
    return await _in_tree(ctx.deps, lambda: ctx.deps.workspace.search(pattern, path))


async def edit_file(ctx: RunContext[_Deps], path: str, old: str, new: str) -> str:
    """Replace the exact text `old` with `new` in a file; `old` must occur exactly once."""
    ctx.deps.events.tool_called("edit_file", path)

    def edit() -> str:
        workspace = ctx.deps.workspace
        done = workspace.edit(path, old, new)
        written = workspace.relative(workspace.resolve(path))
        ctx.deps.log.edited(written)
        ctx.deps.events.file_written(written, created=False)
        return done

    return await _in_tree(ctx.deps, edit)


async def write_file(ctx: RunContext[_Deps], path: str, content: str) -> str:
    """Create a file, or overwrite it with `content`. Parent directories are created as needed."""
    ctx.deps.events.tool_called("write_file", path)

    def write() -> str:
        workspace = ctx.deps.workspace
        created = not workspace.exists(path)
        done = workspace.write(path, content)
        written = workspace.relative(workspace.resolve(path))
        ctx.deps.log.wrote(written, created=created)
        ctx.deps.events.file_written(written, created=created)
        return done

    return await _in_tree(ctx.deps, write)


async def _in_tree(deps: _Deps, operation: Callable[[], str]) -> str:
    """Run a file tool in a thread (a big search must not stall the event loop), holding the tree.

    Cancelled (the run's wall clock), the thread still finishes on its own, bounded by the tool's limits;
    the run is over then, so no command of it starts beside it.
    """
    async with deps.tree:
        return await asyncio.to_thread(tool_result, operation)


async def run_command(ctx: RunContext[_Deps], command: str) -> str:
    """Run a shell command in the repository root, without network access (e.g. the project's tests).

    Returns the exit code and the combined output.
    """
    deps = ctx.deps
    deps.events.tool_called("run_command", command)
    async with deps.tree:
        started = time.monotonic()
        result = await sandbox.run_command(command, deps.workspace.root, deps.sandbox, deps.command_seconds)
    deps.events.command_finished(command, result.exit_code, time.monotonic() - started)
    if result.timed_out:
        deps.log.ran(command, f"timed out after {format_seconds(deps.command_seconds)} s")
        return f"timed out after {format_seconds(deps.command_seconds)} s and was killed\n{result.output}"
    deps.log.ran(command, f"exit {result.exit_code}")
    return f"exit code {result.exit_code}\n{result.output}"

