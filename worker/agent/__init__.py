"""The agent that edits a worktree: the builtin pydantic-ai agent or a CLI agent run as a command.

``make_agent`` picks the backend from explicit settings values; the worker only sees ``Agent``.
"""

from __future__ import annotations

from worker.agent.base import Agent, AgentResult, AgentTask, Budget
from worker.agent.command import CommandAgent, TemplateError
from worker.agent.presets import resolve_preset
from worker.agent.sandbox import SandboxSpec, SandboxUnavailable

__all__ = [
    "Agent", "AgentResult", "AgentTask", "Budget", "CommandAgent", "SandboxSpec", "SandboxUnavailable",
    "TemplateError", "make_agent",
]


def make_agent(agent_command: str | None, llm_base_url: str | None, llm_api_key: str | None,
               llm_model: str | None) -> Agent:
    """A CommandAgent when a command (or preset name) is set, else the BuiltinAgent.

    For a command, the endpoint settings are handed to the CLI through the variables its preset names
    (OPENAI_API_KEY / OPENAI_BASE_URL for custom templates), since its sandbox sees no other environment.
    """
    if agent_command and agent_command.strip():
        preset = resolve_preset(agent_command)
        env = dict(preset.env)
        if llm_api_key:
            env.update(dict.fromkeys(preset.api_key_vars, llm_api_key))
        if llm_base_url:
            env.update(dict.fromkeys(preset.base_url_vars, llm_base_url))
        return CommandAgent(preset.template, env)
    if not llm_base_url or not llm_model:
        raise ValueError("the builtin agent needs MULL_LLM_BASE_URL and MULL_LLM_MODEL "
                         "(or set MULL_AGENT_COMMAND to use a CLI agent)")
    # Imported here: pydantic-ai takes seconds to import, and only this backend needs it.
    from worker.agent.builtin import BuiltinAgent

    return BuiltinAgent(llm_base_url, llm_api_key, llm_model)
