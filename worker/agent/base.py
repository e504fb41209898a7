"""What every agent backend takes and returns, so the worker codes against one shape.

An agent never raises for model or budget trouble: the worker still commits whatever the agent changed,
so every such outcome is a value (``AgentResult.error`` / ``budget_tripped``), not an exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from worker.agent.events import NO_EVENTS, AgentEvents

if TYPE_CHECKING:
    from worker.agent.sandbox import SandboxSpec
    from worker.gateway import RunGrant


@dataclass(frozen=True)
class Budget:
    """Limits Mull enforces on one run; the model is never trusted to stop by itself."""

    seconds: float  # wall clock for the whole run
    steps: int  # model requests
    tokens: int  # total tokens in+out
    command_seconds: float  # per command the agent runs


@dataclass(frozen=True)
class ModelAccess:
    """How an agent reaches its model: Mull's gateway and a token that dies with the run, never the real key.

    The gateway counts every request against the run's budgets, so a CLI agent is held to them as the
    builtin one is; ``grant.out_of_budget`` is set when it refuses one.
    """

    socket: Path  # the gateway's unix socket: bound into the sandbox, or dialled in process
    grant: RunGrant

    @property
    def token(self) -> str:
        return self.grant.token

    @property
    def model(self) -> str:
        return self.grant.model


@dataclass(frozen=True)
class AgentTask:
    prompt: str  # full prompt text (built by worker/agent/prompt.py)
    worktree: Path  # the run's tree (plain files, no Mull git metadata); the agent may only change files here
    sandbox: SandboxSpec  # how to confine commands
    model: ModelAccess  # the agent's only way to its model
    events: AgentEvents = NO_EVENTS  # who watches the run live (``mull try``); nobody in the worker


@dataclass(frozen=True)
class AgentResult:
    """What the pull request body reports; ``summary`` is never empty."""

    summary: str  # what the agent changed and why (Markdown)
    not_done: tuple[str, ...]  # what it could not do
    budget_tripped: str | None  # "wall clock (1800 s)", "steps (40)", "tokens (400000)"; None if finished
    error: str | None  # the run failed, one line: "model endpoint unreachable: ..."
    steps: int
    tokens: int
    blocked: tuple[tuple[str, int], ...] = ()  # ("host:port", times) the egress proxy refused, most first
    session: str | None = None  # the run id of its session page (``worker.sessions``), once stored
    spent: str = ""  # this run's model use as the gateway counted it, priced: "12,345 tokens (…), $0.42"


class Agent(Protocol):
    async def run(self, task: AgentTask, budget: Budget) -> AgentResult: ...


def format_seconds(seconds: float) -> str:
    """``1800`` not ``1800.0``: budgets are shown to users in PR bodies."""
    return f"{seconds:g}"
