"""What every job of a worker shares: its clients and helpers, made once at startup and typed.

arq hands each job a ``ctx`` dict; the worker keeps one ``Services`` in it under ``SERVICES`` and the code
reads it through ``services(ctx)``, so a missing or misspelled service is a type error, not a KeyError in
the middle of a run. Job-specific facts (the job's id and try) stay arq's, in ``ctx``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.redaction import Redactor

if TYPE_CHECKING:
    import httpx
    from arq.connections import ArqRedis

    from bot.settings import MullSettings
    from worker.backlog.fairness import RunSlots
    from worker.gateway import ModelGateway
    from worker.github.app import GitHubApp
    from worker.ops.liveness import Liveness
    from worker.trees.repo_cache import RepoCache

SERVICES = "services"
REFRESH_DELAY_S = 1.0  # changes in a burst (eight labels at once) make one dashboard edit


@dataclass(frozen=True)
class Services:
    """One worker's services. ``clock`` is the backlog's idea of now (simulations run a week fast)."""

    redis: ArqRedis
    github: GitHubApp
    settings: MullSettings
    log: Any  # a structlog logger (bot/logs.py)
    http: httpx.AsyncClient  # for sinks; GitHub has its own client
    repos: RepoCache
    liveness: Liveness
    slots: RunSlots
    gateway: ModelGateway  # the agents' only way to their model
    clock: Callable[[], float] = time.time
    refresh_delay: float = REFRESH_DELAY_S
    redactor: Redactor = field(default_factory=Redactor)  # what Mull posts or sends never carries a secret
    environ: Mapping[str, str] = field(default_factory=dict)  # sinks read their HMAC secret from a variable
    # Re-runs the repository's tests on a pull request Mull brought up to date before release (see
    # worker/backlog/freshen.py ``Retest``): takes the tree, says whether they passed. None: no re-test.
    retest: Callable[[Path], Awaitable[bool]] | None = None


def services(ctx: Mapping[str, Any]) -> Services:
    """The worker's services from a job's ``ctx``; a clear error where a caller forgot to give them."""
    found = ctx.get(SERVICES)
    if not isinstance(found, Services):
        raise RuntimeError(f"the job context has no Services under {SERVICES!r} (it has {sorted(ctx)}): "
                           "worker/app.py's startup puts them there; a test calling a job directly must too")
    return found
