"""What every critic backend takes and returns, and ``make_critic`` to pick one from settings.

A critic never raises for model, budget or output trouble: a failed critique is reported on the pull
request as "critique failed: <reason>", so every such end is a ``CritiqueFailed`` value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from worker.agent.base import Budget, ModelAccess
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
    model: ModelAccess | None = None  # the critic's way to its model (the gateway); required to critique


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


def make_critic(critique_command: str | None, endpoint: str) -> Critic:
    """A CommandCritic when MULL_CRITIQUE_COMMAND is set, else the BuiltinCritic.

    Both reach the model through the gateway of their task; the command gets it as OPENAI_BASE_URL,
    OPENAI_API_KEY (the run's token) and OPENAI_MODEL, as custom agent templates do. ``endpoint``
    (MULL_LLM_BASE_URL) only names the model host in error messages.
    """
    if critique_command and critique_command.strip():
        from worker.critique.command import CommandCritic

        return CommandCritic(critique_command)
    # Imported here: pydantic-ai takes seconds to import, and only this backend needs it.
    from worker.critique.builtin import BuiltinCritic

    return BuiltinCritic(endpoint)
