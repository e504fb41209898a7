"""Known CLI agents, so MULL_AGENT_COMMAND can be just ``aider`` or ``claude``.

Templates run without a shell. Agents that only take the prompt as an argument or on stdin are wrapped
in ``sh -c '...' mull-agent {prompt_file}``: the prompt path arrives as ``$1``, never spliced into the
script, so nothing from the issue is parsed by the shell. Each agent runs inside Mull's sandbox, so
their own approval prompts are turned off.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Preset:
    """A command template, the fixed environment it needs, and where the model endpoint settings go."""

    template: str
    env: Mapping[str, str] = field(default_factory=dict)
    api_key_vars: tuple[str, ...] = ("OPENAI_API_KEY",)  # receive MULL_LLM_API_KEY
    base_url_vars: tuple[str, ...] = ("OPENAI_BASE_URL",)  # receive MULL_LLM_BASE_URL


PRESETS: dict[str, Preset] = {
    "aider": Preset(
        template=(
            "aider --yes-always --no-auto-commits --no-check-update --analytics-disable "
            "--no-show-model-warnings --no-gitignore --chat-history-file /dev/null "
            "--input-history-file /dev/null --message-file {prompt_file}"
        ),
        # Without it litellm fetches its model price list from GitHub on every start.
        env={"LITELLM_LOCAL_MODEL_COST_MAP": "True"},
        base_url_vars=("OPENAI_API_BASE", "OPENAI_BASE_URL"),
    ),
    "claude": Preset(
        # Claude Code's print mode reads the prompt from stdin when given none as an argument.
        template=(
            "sh -c 'exec claude -p --dangerously-skip-permissions --output-format text < \"$1\"' "
            "mull-agent {prompt_file}"
        ),
        # Claude Code refuses to skip permissions as root unless told it is in a sandbox, which it is.
        env={"IS_SANDBOX": "1", "DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"},
        api_key_vars=("ANTHROPIC_API_KEY",),
        base_url_vars=("ANTHROPIC_BASE_URL",),
    ),
    "codex": Preset(
        # `-` reads the prompt from stdin; the final message becomes the PR summary.
        template=(
            "sh -c 'exec codex exec --full-auto --skip-git-repo-check --output-last-message \"$2\" - "
            "< \"$1\"' mull-agent {prompt_file} {summary_file}"
        ),
    ),
    "mini-swe-agent": Preset(
        template=(
            "sh -c 'exec mini --yolo --exit-immediately --task \"$(cat \"$1\")\"' mull-agent {prompt_file}"
        ),
        # Skips mini's first-run setup wizard, which would wait for input forever.
        env={"MSWEA_CONFIGURED": "true"},
        base_url_vars=("OPENAI_BASE_URL", "OPENAI_API_BASE"),
    ),
}


def resolve_preset(value: str) -> Preset:
    """A preset by name, or ``value`` itself as a custom template with the generic OpenAI variables."""
    return PRESETS.get(value.strip(), Preset(template=value))


def resolve_command(value: str) -> str:
    """The template for a preset name, or ``value`` unchanged."""
    return resolve_preset(value).template
