"""The builtin critic: pydantic-ai on an OpenAI-compatible model, with read-only tools over the PR head.

The critique is the model's call to ``submit_critique``, validated against the schema. Invalid output is
sent back to the model with the validation errors once (pydantic-ai's output retries = 1); a second
failure, like a dead endpoint, a budget or the wall clock running out, ends as ``CritiqueFailed`` with a
one-line reason. A model that writes the JSON as text instead of calling the tool is accepted too, since
small local models often do.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_ai import Agent as PydanticAgent
from pydantic_ai import ModelRetry, RunContext, RunUsage, TextOutput, ToolOutput, UsageLimitExceeded, UsageLimits
from pydantic_ai.exceptions import (
    AgentRunError,
    ModelAPIError,
    ToolRetryError,
    UnexpectedModelBehavior,
)
from pydantic_ai.messages import ModelRequest, RetryFeedbackPart, ToolReturnPart
from pydantic_ai.settings import ModelSettings

from worker.agent.base import Budget, format_seconds
from worker.agent.builtin import MAX_REQUEST_SECONDS
from worker.agent.chat_model import gateway_model
from worker.agent.model_text import describe_model_error, one_line, tool_result
from worker.agent.workspace import Workspace
from worker.critique.diff import FileDiff
from worker.critique.parse import UnusableOutput, find_json, from_json
from worker.critique.run import CritiqueFailed, CritiqueOk, CritiqueOutcome, CritiqueTask, failed
from worker.critique.schema import Critique, explain
from worker.critique.sections import describe, numbered

OUTPUT_RETRIES = 1  # invalid critiques the model may correct, after being shown what was wrong
TOOL_RETRIES = 3  # malformed arguments to a reading tool before the run fails
CHANGED_FILES_PAGE = 300


@dataclass(frozen=True)
class _Deps:
    workspace: Workspace
    files: dict[str, FileDiff]


class BuiltinCritic:
    def __init__(self, endpoint: str) -> None:
        self.base_url = endpoint  # named in error messages; requests go through the run's gateway

    async def critique(self, task: CritiqueTask, budget: Budget) -> CritiqueOutcome:
        if task.model is None:
            raise ValueError("a critique needs its model access (CritiqueTask.model): open a gateway run for it")
        model = gateway_model(task.model)
        agent: PydanticAgent[_Deps, Critique] = PydanticAgent(
            model,
            output_type=[ToolOutput(Critique, name="submit_critique", max_retries=OUTPUT_RETRIES),
                         TextOutput(_critique_from_text)],
            deps_type=_Deps,
            tools=[list_files, read_file, search, read_diff, changed_files],
            retries={"tools": TOOL_RETRIES, "output": OUTPUT_RETRIES},
            model_settings=ModelSettings(max_retries=1, timeout=min(budget.seconds, MAX_REQUEST_SECONDS)),
        )
        agent.output_validator(_one_correction_only)
        deps = _Deps(workspace=Workspace(task.worktree), files={file.path: file for file in task.files})
        usage = RunUsage()
        deadline = asyncio.timeout(budget.seconds)
        try:
            async with model:
                async with deadline:
                    result = await agent.run(task.prompt, deps=deps, usage=usage, usage_limits=UsageLimits(
                        request_limit=budget.steps, total_tokens_limit=budget.tokens))
        except (TimeoutError, AgentRunError) as exc:
            if deadline.expired():
                return failed(f"wall clock ({format_seconds(budget.seconds)} s) ran out", usage.requests,
                              usage.total_tokens)
            if not isinstance(exc, AgentRunError):
                raise  # a timeout that isn't ours or pydantic-ai's is a bug
            return self._ended(exc, usage, budget)
        except _TooManyCorrections as exc:
            return failed(f"the model's output was invalid twice: {exc}", usage.requests, usage.total_tokens)
        return CritiqueOk(critique=result.output, steps=usage.requests, tokens=usage.total_tokens)

    def _ended(self, exc: AgentRunError, usage: RunUsage, budget: Budget) -> CritiqueFailed:
        if isinstance(exc, UsageLimitExceeded):
            which = "tokens" if "tokens_limit" in str(exc) else "steps"
            limit = budget.tokens if which == "tokens" else budget.steps
            reason = f"budget exhausted: {which} ({limit})"
        elif isinstance(exc, ModelAPIError):
            reason = self._describe(exc)
        elif isinstance(exc, UnexpectedModelBehavior) and exc.message.startswith("Exceeded maximum output retries"):
            reason = f"the model's output was invalid twice: {_invalid_output(exc)}"
        elif isinstance(exc, UnexpectedModelBehavior):
            reason = f"model returned malformed output: {one_line(exc.message.split('. ', 1)[0])}"
        else:
            reason = f"critique run failed: {one_line(str(exc).split('. ', 1)[0])}"
        return failed(reason, usage.requests, usage.total_tokens)

    def _describe(self, exc: ModelAPIError) -> str:
        return describe_model_error(exc, self.base_url)


def _critique_from_text(text: str) -> Critique:
    """The JSON critique written as text; prose gets the model one reminder to call the tool."""
    data = find_json(text)
    if data is None:
        raise ModelRetry("no critique received, only prose. Call the submit_critique tool with your critique.")
    try:
        return from_json(data)
    except UnusableOutput as exc:
        raise ModelRetry(f"{exc}. Call the submit_critique tool with corrected values.") from None


class _TooManyCorrections(Exception):
    """A second invalid output reached by another path: pydantic-ai counts text and tool retries apart."""


def _one_correction_only(ctx: RunContext[_Deps], output: Critique) -> Critique:
    """Fail a valid critique that came after two corrections (say prose, then bad JSON): one is the rule."""
    feedback = [part.content for message in ctx.messages if isinstance(message, ModelRequest)
                for part in message.parts
                if isinstance(part, RetryFeedbackPart) or (isinstance(part, ToolReturnPart) and
                                                           part.outcome == "retried" and
                                                           part.tool_name == "submit_critique")]
    if len(feedback) > OUTPUT_RETRIES:
        raise _TooManyCorrections(_feedback_text(feedback[-1]))
    return output


def _invalid_output(exc: UnexpectedModelBehavior) -> str:
    """The last validation problem, from the exception chain pydantic-ai leaves behind."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ValidationError):
            return one_line(explain(cause))
        if isinstance(cause, ModelRetry):
            return one_line(cause.message.split(". ", 1)[0])
        if isinstance(cause, ToolRetryError):
            return _feedback_text(cause.tool_retry.content)
        cause = cause.__cause__ or cause.__context__
    return one_line(exc.message)


def _feedback_text(content: Any) -> str:
    """What the model was told was wrong: validation error details, or a ModelRetry message."""
    if not isinstance(content, list):
        return one_line(str(content).split(". ", 1)[0])
    problems = [f"{'.'.join(str(part) for part in item.get('loc', ())) or 'output'}: "
                f"{str(item.get('msg', '')).removeprefix('Value error, ')}" for item in content[:3]]
    return one_line("; ".join(problems))


# -- tools: read-only; errors go back to the model as text, so a wrong path never ends the critique ------


def list_files(ctx: RunContext[_Deps], path: str = ".") -> str:
    """List the files under a directory of the pull request's head commit (recursively; dirs end with /)."""
    return tool_result(lambda: ctx.deps.workspace.list(path))


def read_file(ctx: RunContext[_Deps], path: str, offset: int = 1, limit: int = 400) -> str:
    """Read a file of the head commit, as numbered lines starting at line `offset` (1-based), at most `limit`."""
    return tool_result(lambda: ctx.deps.workspace.read(path, offset, limit))


def search(ctx: RunContext[_Deps], pattern: str, path: str = ".") -> str:
    """Search the head commit's files for a Python regular expression; returns `path:line: text` per match."""
    return tool_result(lambda: ctx.deps.workspace.search(pattern, path))


def read_diff(ctx: RunContext[_Deps], path: str, offset: int = 1, limit: int = 400) -> str:
    """Read one changed file's diff, numbered by new-file line, from diff line `offset`, at most `limit` lines."""
    file = ctx.deps.files.get(path.strip().removeprefix("./"))
    if file is None:
        return f"error: '{path}' is not a changed file of this pull request; call changed_files to list them"
    if file.binary:
        return f"'{path}' is a binary file: there is no text diff"
    if file.patch is None:
        return f"the diff of '{path}' was too large to fetch; read the file itself with read_file"
    lines = numbered(file.patch).split("\n") if file.patch else []
    if not lines:
        return f"'{path}' ({describe(file)}) has no content changes"
    start = max(offset, 1)
    chosen = lines[start - 1:start - 1 + max(limit, 1)]
    end = start + len(chosen) - 1
    more = f"\n[diff lines {start}-{end} of {len(lines)}; call again with offset={end + 1} for more]"
    return "\n".join(chosen) + (more if end < len(lines) else "")


def changed_files(ctx: RunContext[_Deps], offset: int = 0) -> str:
    """List every file this pull request changes, with its status and added/deleted line counts."""
    files = list(ctx.deps.files.values())
    page = files[max(offset, 0):max(offset, 0) + CHANGED_FILES_PAGE]
    text = "\n".join(f"{file.path} ({describe(file)}{', binary' if file.binary else ''})" for file in page)
    shown_to = max(offset, 0) + len(page)
    if shown_to < len(files):
        text += f"\n[{shown_to} of {len(files)} files; call again with offset={shown_to} for more]"
    return text or "no changed files"

