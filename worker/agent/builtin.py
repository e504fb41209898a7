"""The builtin agent: pydantic-ai driving an OpenAI-compatible model with file and command tools.

Mull, not the model, enforces the budget: steps and tokens through pydantic-ai's usage limits, wall
clock through ``asyncio.timeout``. Every way a run can go wrong short of a bug in Mull becomes an
``AgentResult``, because the worker still commits whatever the agent changed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import BaseModel, Field
from pydantic_ai import Agent as PydanticAgent
from pydantic_ai import RunContext, RunUsage, ToolOutput, UsageLimitExceeded, UsageLimits
from pydantic_ai.exceptions import (
    AgentRunError,
    ModelAPIError,
    UnexpectedModelBehavior,
)
from pydantic_ai.settings import ModelSettings

from worker.agent import sandbox
from worker.agent.actions import ActionLog
from worker.agent.base import AgentResult, AgentTask, Budget, format_seconds
from worker.agent.chat_model import gateway_model
from worker.agent.events import NO_EVENTS, AgentEvents
from worker.agent.model_text import describe_model_error, one_line, tool_result
from worker.agent.workspace import Workspace

TOOL_RETRIES = 3  # malformed arguments the model may send for one tool before the run fails
MAX_REQUEST_SECONDS = 300.0


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
        model = gateway_model(task.model)
        agent = PydanticAgent(
            model,
            output_type=ToolOutput(Finish, name="finish"),
            deps_type=_Deps,
            tools=[list_files, read_file, search, edit_file, write_file, run_command],
            retries=TOOL_RETRIES,
            model_settings=ModelSettings(max_retries=1, timeout=min(budget.seconds, MAX_REQUEST_SECONDS)),
        )
        limits = UsageLimits(request_limit=budget.steps, total_tokens_limit=budget.tokens)
        usage = RunUsage()
        outcome = _Outcome(log, usage)
        deadline = asyncio.timeout(budget.seconds)
        try:
            async with model:
                async with deadline:
                    result = await agent.run(task.prompt, deps=deps, usage_limits=limits, usage=usage)
        except (TimeoutError, AgentRunError) as exc:
            if deadline.expired():
                return outcome.tripped(f"wall clock ({format_seconds(budget.seconds)} s)")
            if not isinstance(exc, AgentRunError):
                raise  # a timeout that isn't ours or pydantic-ai's is a bug
            if task.model.grant.usage.tripped:  # the gateway counted a budget out before pydantic-ai did
                return outcome.tripped(task.model.grant.usage.tripped)
            return self._ended(exc, outcome, budget)
        finish = result.output
        return AgentResult(
            summary=finish.summary.strip() or log.summary("the model gave an empty summary"),
            not_done=tuple(item for item in finish.not_done if item.strip()),
            budget_tripped=None,
            error=None,
            steps=usage.requests,
            tokens=usage.total_tokens,
        )

    def _ended(self, exc: AgentRunError, outcome: _Outcome, budget: Budget) -> AgentResult:
        if isinstance(exc, UsageLimitExceeded):
            return outcome.tripped(_which_limit(str(exc), outcome.usage, budget))
        if isinstance(exc, ModelAPIError):
            return outcome.failed(self._describe(exc))
        if isinstance(exc, UnexpectedModelBehavior):
            return outcome.failed(f"model returned malformed output: {_first_sentence(exc.message)}")
        return outcome.failed(f"agent run failed: {_first_sentence(str(exc))}")

    def _describe(self, exc: ModelAPIError) -> str:
        return describe_model_error(exc, self.base_url)


@dataclass(frozen=True)
class _Outcome:
    """Builds the result of a run that ended early, from the action log and usage so far."""

    log: ActionLog
    usage: RunUsage

    def tripped(self, budget: str) -> AgentResult:
        return self._result(self.log.summary(f"budget exhausted: {budget}"), budget=budget, error=None)

    def failed(self, error: str) -> AgentResult:
        return self._result(self.log.summary(error), budget=None, error=error)

    def _result(self, summary: str, budget: str | None, error: str | None) -> AgentResult:
        return AgentResult(summary=summary, not_done=("finish the task: the run ended before it was done",),
                           budget_tripped=budget, error=error, steps=self.usage.requests,
                           tokens=self.usage.total_tokens)


def _which_limit(message: str, usage: RunUsage, budget: Budget) -> str:
    if "request_limit" in message or ("tokens_limit" not in message and usage.requests >= budget.steps):
        return f"steps ({budget.steps})"
    return f"tokens ({budget.tokens})"






def _first_sentence(text: str) -> str:
    """pydantic-ai appends documentation hints ("Consider raising the limit, ...") the PR reader can't use."""
    return one_line(text.split(". ", 1)[0])




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

