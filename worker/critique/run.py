"""What every critic backend takes and returns, and ``make_critic`` to pick one from settings.

A critic never raises for model, budget or output trouble: a failed critique is reported on the pull
request as "critique failed: <reason>", so every such end is a ``CritiqueFailed`` value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from worker.agent.base import Budget
from worker.agent.sandbox import SandboxSpec
from worker.critique.diff import FileDiff
from worker.critique.schema import Critique

FAILED_PREFIX = "critique failed: "


@dataclass(frozen=True)
class CritiqueTask:
    prompt: str  # built by worker/critique/prompt.py, within the token budget
    worktree: Path  # checkout of the PR head; the critic only reads it
    files: tuple[FileDiff, ...] = ()  # every changed file, for the read_diff and changed_files tools
    sandbox: SandboxSpec = field(default_factory=SandboxSpec)  # how a CLI critic is confined; made read-only


@dataclass(frozen=True)
class CritiqueOk:
    critique: Critique
    steps: int  # model requests (CLI: command runs)
    tokens: int  # input + output tokens (CLI: 0, unknown)


@dataclass(frozen=True)
class CritiqueFailed:
    reason: str  # one line starting "critique failed: "; no stack trace, no key
    steps: int = 0
    tokens: int = 0


CritiqueOutcome = CritiqueOk | CritiqueFailed


class Critic(Protocol):
    async def critique(self, task: CritiqueTask, budget: Budget) -> CritiqueOutcome: ...


def failed(reason: str, steps: int = 0, tokens: int = 0) -> CritiqueFailed:
    return CritiqueFailed(reason=FAILED_PREFIX + reason.strip().removeprefix(FAILED_PREFIX), steps=steps,
                          tokens=tokens)


def make_critic(critique_command: str | None, base_url: str | None, api_key: str | None,
                model: str | None) -> Critic:
    """A CommandCritic when MULL_CRITIQUE_COMMAND is set, else the BuiltinCritic on MULL_LLM_*.

    The command gets the endpoint as OPENAI_API_KEY / OPENAI_BASE_URL, as custom agent templates do.
    """
    if critique_command and critique_command.strip():
        from worker.critique.command import CommandCritic

        env = {name: value for name, value in (("OPENAI_API_KEY", api_key), ("OPENAI_BASE_URL", base_url))
               if value}
        return CommandCritic(critique_command, env)
    if not base_url or not model:
        raise ValueError("the builtin critic needs MULL_LLM_BASE_URL and MULL_LLM_MODEL "
                         "(or set MULL_CRITIQUE_COMMAND to use a CLI critic)")
    # Imported here: pydantic-ai takes seconds to import, and only this backend needs it.
    from worker.critique.builtin import BuiltinCritic

    return BuiltinCritic(base_url, api_key, model)
