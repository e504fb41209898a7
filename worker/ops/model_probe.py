"""The configured models, asked for once before ``mull try`` runs and before a worker takes jobs.

``worker/ops/model_check.py`` knows how to ask an endpoint and word its answer; this module knows which models the
settings name and what a refusal means where. ``mull try`` refuses to run on any of them. A worker refuses to
start on what only a change of settings fixes (a refused key, a base URL without ``/v1``, a model the server
does not have), and only warns, in one line, when the server does not answer at all: it may come up after
Mull does, and the first run that needs it will say so again.
"""

from __future__ import annotations

from bot.settings import ConfigError, MullSettings
from worker.agent.presets import resolve_preset
from worker.ops.model_check import ModelUnreachable, probe


def speaks_anthropic(settings: MullSettings) -> bool:
    """A Claude Code preset talks to an Anthropic endpoint, which wants its key as ``x-api-key``."""
    return bool(settings.agent_command) and "ANTHROPIC_API_KEY" in \
        resolve_preset(settings.agent_command or "").api_key_vars


def configured_models(settings: MullSettings, *, critique: bool = True) -> list[str]:
    """The agent's model, and the critique's when it is another."""
    models = [settings.llm_model] if settings.llm_model else []
    if critique and settings.critique_model and settings.critique_model not in models:
        models.append(settings.critique_model)
    return models


async def check_models(settings: MullSettings, models: list[str]) -> None:
    """Raise ConfigError (ModelUnreachable when nothing answered) for the first model that cannot be used."""
    if not settings.llm_base_url:
        return  # MULL_LLM_BASE_URL is reported missing by the settings check
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    for model in models:
        await probe(settings.llm_base_url, key, model, anthropic=speaks_anthropic(settings))


async def worker_start_problems(settings: MullSettings) -> tuple[list[str], str | None]:
    """What keeps a worker from starting, one line each, and apart from those a warning when the server does
    not answer at all (logged by the caller only if the worker does start)."""
    try:
        await check_models(settings, configured_models(settings))
    except ModelUnreachable as exc:
        return [], str(exc)
    except ConfigError as exc:
        return list(exc.problems), None
    return [], None
