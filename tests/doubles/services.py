"""The worker's ``Services`` for tests that call Mull's code in their own process.

A test gives the services the code under test uses; the others are None, so code that reaches for one it
was not given fails at once with an AttributeError naming it, instead of a test passing by accident.
"""

from __future__ import annotations

from typing import Any

from bot import logs
from bot.settings import load_settings
from worker.jobs.services import SERVICES, Services


def make_services(redis: Any, **given: Any) -> Services:
    """``redis`` (an arq pool) and whichever of Services' fields the test needs."""
    fields: dict[str, Any] = {"github": None, "settings": load_settings({}, env_file=None),
                              "log": logs.get("mull.test"), "http": None, "repos": None, "liveness": None,
                              "slots": None, "gateway": None, **given}
    return Services(redis=redis, **fields)


def job_ctx(svc: Services, job_id: str = "", job_try: int = 1) -> dict[str, Any]:
    """An arq job's ``ctx`` holding ``svc``, as a job function receives it."""
    return {SERVICES: svc, "redis": svc.redis, "job_id": job_id, "job_try": job_try}
