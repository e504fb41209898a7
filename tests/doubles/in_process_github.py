"""Mull's worker code in the test's own process against the GitHub double, with no server and no socket.

The double is mounted through ``httpx.ASGITransport`` under Mull's real ``GitHubApp`` (JWT, installation
tokens, the redacting transport), and the worker's ``Services`` sit on a real Redis. A test then calls
handlers, jobs and the lifecycle directly and reads the double's state and Redis between steps.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bot.jobs import QUEUE, RepoRef, refresh_job_id
from bot.settings import load_settings
from worker.backlog.fairness import RunSlots
from worker.github.app import BoundedRetry, GitHubApp
from worker.jobs.queue import connect
from worker.jobs.services import Services
from worker.trees.repo_cache import RepoCache

from .fixtures import APP_ID, INSTALLATION_ID, OWNER, REPO, SEED_FILES
from .github import GitHubDouble
from .recording_log import RecordingLog
from .services import make_services

API = "http://github.in-process"


@dataclass
class InProcessGitHub:
    double: GitHubDouble
    svc: Services
    ref: RepoRef
    log: RecordingLog

    @property
    def gh(self) -> Any:
        """An installation client scoped to the repository (open it with ``async with``)."""
        return self.svc.github.installation(self.ref.installation_id, self.ref.repo_id)

    async def refresh_queued(self) -> bool:
        """Whether a dashboard refresh of the repo is queued; asking takes it off, so the next look is fresh."""
        job_id = refresh_job_id(self.ref.repo_id)
        queued = await self.svc.redis.zscore(QUEUE, job_id) is not None
        await self.svc.redis.zrem(QUEUE, job_id)
        await self.svc.redis.delete(f"arq:job:{job_id}")
        return queued

    def writes(self, since: int) -> list[str]:
        """The writes to the repository (method and path) since ``since`` requests were logged; minting an
        installation token is not one."""
        return [f"{r.method} {r.path}" for r in self.double.requests()[since:]
                if r.method != "GET" and not r.path.endswith("/access_tokens")]


@contextlib.asynccontextmanager
async def in_process_github(tmp_path: Path, redis_url: str, app_keypair: tuple[str, str], *, served: bool = False,
                            **services: Any) -> AsyncIterator[InProcessGitHub]:
    """``acme/widgets`` installed (777) on a double reached in process; ``services`` override Services' fields.
    ``served``: the double also listens on a local port, so Mull's git can fetch and push over smart HTTP."""
    double = GitHubDouble(tmp_path / "github", app_keypair[1], app_id=APP_ID)
    if served:
        double.start()
    repo = double.create_repo(REPO, SEED_FILES)
    double.add_installation(INSTALLATION_ID, OWNER)
    redis = await connect(redis_url)
    await redis.flushdb()
    log = RecordingLog()
    github = GitHubApp(APP_ID, app_keypair[0], API, redis, retry=BoundedRetry(backoff=0.01),
                       transport=httpx.ASGITransport(app=double.asgi_app))
    http = httpx.AsyncClient()
    services.setdefault("repos", RepoCache(tmp_path / "repo-cache"))  # a job may start a fetch before it runs
    svc = make_services(redis, github=github, settings=load_settings({}, env_file=None), log=log, http=http,
                        slots=RunSlots(redis, 2, hold_seconds=3600), refresh_delay=0, **services)
    try:
        yield InProcessGitHub(double, svc, RepoRef(INSTALLATION_ID, repo.id, OWNER, "widgets"), log)
    finally:
        if served:
            double.stop()
        await http.aclose()
        await redis.flushdb()
        await redis.aclose()
        double.stop()
