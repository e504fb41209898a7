"""The boundary of every job that works on a repository: the one place its try starts and ends.

In order: a suspended installation's job waits (without spending a try); an agent run takes one of its
installation's run slots (``worker.backlog.fairness``); the installation's GitHub client is opened for the whole job
(one connection pool); trouble GitHub or Redis may get over (5xx, rate limits, lost connections) becomes an
arq ``Retry`` with backoff while tries are left; the slot is given back however the job ends. Jobs write
``async with job_boundary(ctx, request.ref, ...) as job:`` and get a ``JobRun``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from arq import Retry
from githubkit import GitHub

from bot.jobs import RepoRef
from worker.backlog.fairness import wait_for_slot
from worker.github import failures
from worker.jobs.services import Services, services
from worker.webhooks.installations import pause_if_suspended


@dataclass(frozen=True)
class JobRun:
    """One try of a job: the worker's services, which try it is, and its installation's GitHub client."""

    svc: Services
    job_id: str
    job_try: int
    gh: GitHub
    log: Any  # bound to the job id and what the job works on
    installation_id: int = 0  # whose runs these are: model use and budgets count per installation

    def will_retry(self, exc: BaseException) -> bool:
        """Whether the boundary turns ``exc`` into another try (so the job should not report a failure yet)."""
        return failures.is_transient(exc) and self.job_try < failures.MAX_TRIES


@contextlib.asynccontextmanager
async def job_boundary(ctx: Mapping[str, Any], repo: RepoRef | None, installation_id: int | None = None, *,
                       run_slot: bool = False, pause_when_suspended: bool = True,
                       **log_fields: Any) -> AsyncIterator[JobRun]:
    """``repo`` scopes the GitHub client to one repository; None (with ``installation_id``) for a whole
    installation. ``run_slot``: the job runs an agent, so it waits for one of the installation's slots."""
    svc = services(ctx)
    job_id = str(ctx.get("job_id") or "")
    job_try = int(ctx.get("job_try") or 1)
    installation = repo.installation_id if repo is not None else installation_id
    if installation is None:
        raise ValueError("job_boundary needs a repository or an installation id")
    if pause_when_suspended:
        await pause_if_suspended(svc, job_id, installation)
    if run_slot:
        await wait_for_slot(svc, job_id, installation)
    log = svc.log.bind(job_id=job_id, installation=installation,
                       **({"repo": repo.full_name} if repo else {}), **log_fields)
    try:
        gh = svc.github.installation(installation, repo.repo_id if repo else None)
        async with gh:
            job = JobRun(svc, job_id, job_try, gh, log, installation)
            try:
                yield job
            except Retry:
                raise
            except Exception as exc:  # the job's boundary: another try for what may pass, the rest fails loudly
                if job.will_retry(exc):
                    log.warning("transient failure, retrying", error=str(exc)[:200], job_try=job_try)
                    raise failures.retry_later(exc, job_try) from exc
                raise
    finally:
        if run_slot:
            await svc.slots.release(installation, job_id)
