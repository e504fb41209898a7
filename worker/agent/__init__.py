"""The agent that edits a worktree: the builtin pydantic-ai agent or a CLI agent run as a command.

``make_agent`` picks the backend from explicit settings values; the worker only sees ``Agent``.
"""

from __future__ import annotations

from worker.agent.base import Agent, AgentResult, AgentTask, Budget, ModelAccess
from worker.agent.command import CommandAgent, TemplateError
from worker.agent.presets import resolve_preset
from worker.agent.sandbox import SandboxSpec, SandboxUnavailable

__all__ = [
    "Agent", "AgentResult", "AgentTask", "Budget", "ModelAccess", "CommandAgent", "SandboxSpec", "SandboxUnavailable",
    "TemplateError", "make_agent",
]


def make_agent(agent_command: str | None, endpoint: str) -> Agent:
    """A CommandAgent when a command (or preset name) is set, else the BuiltinAgent.

    Either way the agent reaches its model through the gateway of its task (``AgentTask.model``): it never
    holds the endpoint's key. ``endpoint`` (MULL_LLM_BASE_URL) only names the model host in error messages.
    """
    if agent_command and agent_command.strip():
        return CommandAgent(resolve_preset(agent_command))
    # Imported here: pydantic-ai takes seconds to import, and only this backend needs it.
    from worker.agent.builtin import BuiltinAgent

    return BuiltinAgent(endpoint)
