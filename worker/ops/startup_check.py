"""What a ``mull`` command needs before it starts anything, checked all at once.

Settings used to be refused one at a time (the App id, then the key, then the model, then bubblewrap), each
costing a restart to find the next. Here every invalid value, every missing setting, every agent program that
is not installed and a sandbox that cannot start go into one ConfigError, one line each, before Redis or a
server starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from bot.settings import ConfigError, MullSettings
from worker.agent.sandbox import SandboxUnavailable, check_bwrap
from worker.agent.startup_check import agent_problems
from worker.ops.model_probe import worker_start_problems


@dataclass(frozen=True)
class Needs:
    """What one command needs of the settings and the machine."""

    app: bool = False  # MULL_APP_ID and a private key that parses
    webhook: bool = False  # MULL_WEBHOOK_SECRET
    model: bool = False  # MULL_LLM_BASE_URL and MULL_LLM_MODEL
    agent: bool = False  # MULL_AGENT_COMMAND's program installed (and its template sound)
    presets: bool = False  # the programs of MULL_AGENT_PRESETS installed
    critique: bool = False  # MULL_CRITIQUE_COMMAND's program installed
    sandbox: bool = False  # bubblewrap starts a sandbox, unless MULL_SANDBOX=false
    probe: bool = False  # the model server answers for the configured models (worker/ops/model_probe.py)


WORKER = Needs(app=True, model=True, agent=True, presets=True, critique=True, sandbox=True)
SERVE = replace(WORKER, webhook=True)
NOTHING = Needs()


def problems(settings: MullSettings, needs: Needs) -> list[str]:
    """One line per thing that keeps the command from working, each saying what to change."""
    found = settings.unmet(app=needs.app, webhook=needs.webhook, model=needs.model)
    found += agent_problems(settings, command=needs.agent, presets=needs.presets, critique=needs.critique)
    if needs.sandbox and settings.sandbox:
        try:
            check_bwrap()
        except SandboxUnavailable as exc:
            found.append(str(exc))
    return found


def check(settings: MullSettings, needs: Needs, invalid: Sequence[str] = ()) -> None:
    """Raise one ConfigError listing the ``invalid`` values (``bot.settings.read_settings``) and every unmet
    need; return when there are none."""
    found = _together(invalid, problems(settings, needs))
    if found:
        raise ConfigError(*found)


def _together(invalid: Sequence[str], unmet: list[str]) -> list[str]:
    """Invalid values first; a variable reported invalid is not reported again as unset (its default stood in)."""
    named = {_variable(problem) for problem in invalid}
    return [*invalid, *(problem for problem in unmet if _variable(problem) not in named)]


def _variable(problem: str) -> str:
    return problem.split(" ", 1)[0].split(":", 1)[0].split("=", 1)[0]


def check_before_start(settings: MullSettings, needs: Needs, invalid: Sequence[str], log: Any) -> None:
    """``check``, plus the model probe when ``needs.probe``: for a command about to start, outside any event
    loop. The probe's problems join the others, so the message still lists everything."""
    found = _together(invalid, problems(settings, needs))
    unreachable = None
    if needs.probe and settings.llm_base_url and settings.llm_model:
        refused, unreachable = asyncio.run(worker_start_problems(settings))
        found += refused
    if found:
        raise ConfigError(*found)
    if unreachable:
        log.warning("model server not answering at start-up; runs fail until it does", error=unreachable)
