"""The builtin critic: pydantic-ai on an OpenAI-compatible model, with read-only tools over the PR head.

The critique is the model's call to ``submit_critique``, validated against the schema. Invalid output is
sent back to the model with the validation errors once (pydantic-ai's output retries = 1); a second
failure, like a dead endpoint, a budget or the wall clock running out, ends as ``CritiqueFailed`` with a
one-line reason. A model that writes the JSON as text instead of calling the tool is accepted too, since
small local models often do. The run itself (budgets, wall clock, errors) is worker/agent/model_run.py's.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic_ai import Agent as PydanticAgent
from pydantic_ai import ModelRetry, RunContext, TextOutput, ToolOutput
from pydantic_ai.messages import ModelRequest, RetryFeedbackPart, ToolReturnPart

from worker.agent.base import Budget
from worker.agent.model_run import Ended, ModelRoute, OutputRejected, RunLimits, feedback_text, run_agent
from worker.agent.model_text import tool_result
from worker.agent.workspace import Workspace
from worker.critique.diff import FileDiff
from worker.critique.parse import UnusableOutput, find_json, from_json
from worker.critique.run import CritiqueOk, CritiqueOutcome, CritiqueTask, failed
from worker.critique.schema import Critique
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
        agent: PydanticAgent[_Deps, Critique] = PydanticAgent(
            output_type=[ToolOutput(Critique, name="submit_critique", max_retries=OUTPUT_RETRIES),
                         TextOutput(_critique_from_text)],
            deps_type=_Deps,
            tools=[list_files, read_file, search, read_diff, changed_files],
            retries={"tools": TOOL_RETRIES, "output": OUTPUT_RETRIES},
        )
        agent.output_validator(_one_correction_only)
        deps = _Deps(workspace=Workspace(task.worktree), files={file.path: file for file in task.files})
        outcome = await run_agent(agent, task.prompt, deps=deps, route=ModelRoute.through_gateway(
            task.model, self.base_url), limits=RunLimits.of(budget))
        if isinstance(outcome, Ended):
            return failed(_reason(outcome), outcome.usage.steps, outcome.usage.tokens)
        return CritiqueOk(critique=outcome.output, steps=outcome.usage.steps, tokens=outcome.usage.tokens)


def _reason(ended: Ended) -> str:
    if ended.reason == "timeout":
        return f"{ended.detail} ran out"
    if ended.reason == "usage_limit":
        return f"budget exhausted: {ended.detail}"
    if ended.reason == "invalid_output":
        return f"the model's output was invalid twice: {ended.detail}"
    if ended.reason == "bad_output":
        return f"model returned malformed output: {ended.detail}"
    if ended.reason == "run_error":
        return f"critique run failed: {ended.detail}"
    return ended.detail


def _critique_from_text(text: str) -> Critique:
    """The JSON critique written as text; prose gets the model one reminder to call the tool."""
    data = find_json(text)
    if data is None:
        raise ModelRetry("no critique received, only prose. Call the submit_critique tool with your critique.")
    try:
        return from_json(data)
    except UnusableOutput as exc:
        raise ModelRetry(f"{exc}. Call the submit_critique tool with corrected values.") from None


def _one_correction_only(ctx: RunContext[_Deps], output: Critique) -> Critique:
    """Fail a valid critique that came after two corrections (say prose, then bad JSON): one is the rule.

    pydantic-ai counts text and tool output retries apart, so it may ask a third time.
    """
    feedback = [part.content for message in ctx.messages if isinstance(message, ModelRequest)
                for part in message.parts
                if isinstance(part, RetryFeedbackPart) or (isinstance(part, ToolReturnPart) and
                                                           part.outcome == "retried" and
                                                           part.tool_name == "submit_critique")]
    if len(feedback) > OUTPUT_RETRIES:
        raise OutputRejected(feedback_text(feedback[-1]))
    return output


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

