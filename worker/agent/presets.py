"""Known CLI agents, so MULL_AGENT_COMMAND can be just ``aider`` or ``claude``.

Templates run without a shell. Agents that only take the prompt as an argument or on stdin are wrapped
in ``sh -c '...' mull-agent {prompt_file}``: the prompt path arrives as ``$1``, never spliced into the
script, so nothing from the issue is parsed by the shell. Each agent runs inside Mull's sandbox, so
their own approval prompts are turned off.

Every preset talks to Mull's model gateway, never to the endpoint itself: it gets the gateway's URL inside
the sandbox, the run's token as its API key, and the model Mull is configured with (``{model}`` in the
template, or the variables in ``model_vars``). Nothing else in its environment names a host.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# litellm-based agents: no price-list download, no telemetry, no update check (the sandbox has no network, and
# a refused connection would only cost start-up time and noise in the PR).
_LITELLM_OFFLINE = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False"}


@dataclass(frozen=True)
class Preset:
    """A command template, the fixed environment it needs, and where the gateway's coordinates go."""

    template: str
    env: Mapping[str, str] = field(default_factory=dict)
    api_key_vars: tuple[str, ...] = ("OPENAI_API_KEY",)  # receive the run's gateway token
    base_url_vars: tuple[str, ...] = ("OPENAI_BASE_URL",)  # receive the gateway's URL inside the sandbox
    model_vars: tuple[str, ...] = ()  # receive the model name
    api_path: str = "/v1"  # appended to the gateway URL: OpenAI clients want /v1, Anthropic's adds it itself
    program: str = ""  # the executable the template runs, checked at start-up (empty: the template's first word)
    install: str = ""  # how to install it, for the start-up check's message


PRESETS: dict[str, Preset] = {
    "aider": Preset(
        # --no-git: the tree is a plain directory and Mull commits; without it aider runs `git init` there.
        template=(
            "aider --model openai/{model} --yes-always --no-auto-commits --no-dirty-commits --no-git "
            "--no-check-update --no-show-release-notes --analytics-disable --no-show-model-warnings "
            "--no-gitignore --no-pretty --no-fancy-input --no-stream --no-detect-urls --no-auto-lint "
            "--map-tokens 0 --chat-history-file /dev/null --input-history-file /dev/null "
            "--message-file {prompt_file}"
        ),
        env=_LITELLM_OFFLINE,
        base_url_vars=("OPENAI_API_BASE", "OPENAI_BASE_URL"),
        program="aider",
        install="`pipx install aider-chat`",
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
        model_vars=("ANTHROPIC_MODEL", "ANTHROPIC_SMALL_FAST_MODEL"),
        api_path="",
        program="claude",
        install="`npm install -g @anthropic-ai/claude-code`",
    ),
    "codex": Preset(
        # `-` reads the prompt from stdin; the final message becomes the PR summary. A provider of its own
        # speaks chat completions, which the gateway serves, to the URL in OPENAI_BASE_URL.
        template=(
            "sh -c 'exec codex exec --full-auto --skip-git-repo-check -m \"$3\" "
            "-c model_provider=mull -c model_providers.mull.name=mull -c model_providers.mull.wire_api=chat "
            "-c model_providers.mull.env_key=OPENAI_API_KEY -c \"model_providers.mull.base_url=$OPENAI_BASE_URL\" "
            "--output-last-message \"$2\" - < \"$1\"' mull-agent {prompt_file} {summary_file} {model}"
        ),
        program="codex",
        install="`npm install -g @openai/codex`",
    ),
    "mini-swe-agent": Preset(
        # -l 0: no cost limit of its own (Mull's gateway holds the budgets); the trajectory stays in the
        # sandbox's private HOME, out of the tree.
        template=(
            "sh -c 'exec mini -y --exit-immediately -l 0 -m \"openai/$2\" -o \"$HOME/trajectory.json\" "
            "-t \"$(cat \"$1\")\"' mull-agent {prompt_file} {model}"
        ),
        # MSWEA_CONFIGURED skips mini's first-run setup wizard, which would wait for input forever.
        env={"MSWEA_CONFIGURED": "true", "MSWEA_COST_TRACKING": "ignore_errors", "MSWEA_SILENT_STARTUP": "1",
             "MSWEA_MODEL_RETRY_STOP_AFTER_ATTEMPT": "2", **_LITELLM_OFFLINE},
        base_url_vars=("OPENAI_API_BASE", "OPENAI_BASE_URL"),
        program="mini",
        install="`pipx install mini-swe-agent`",
    ),
}


def resolve_preset(value: str) -> Preset:
    """A preset by name, or ``value`` itself as a custom template with the generic OpenAI variables."""
    return PRESETS.get(value.strip(), Preset(template=value, model_vars=("OPENAI_MODEL",)))


def resolve_command(value: str) -> str:
    """The template for a preset name, or ``value`` unchanged."""
    return resolve_preset(value).template


def gateway_env(preset: Preset, gateway_url: str, token: str, model: str) -> dict[str, str]:
    """The variables that point ``preset`` at the gateway: its URL, the run's token and the model."""
    env = dict(preset.env)
    env.update(dict.fromkeys(preset.api_key_vars, token))
    env.update(dict.fromkeys(preset.base_url_vars, gateway_url + preset.api_path))
    env.update(dict.fromkeys(preset.model_vars, model))
    return env
