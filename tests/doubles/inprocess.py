"""Mull with its worker in the test's own process, on a clock the test moves.

The webhooks still go through a real ``mull web`` into Redis; the worker runs in bursts (every job there is,
and what those enqueue, then it stops), and the cron jobs are called by the test when it wants them. That
makes a week of backlog run in a minute, and lets a test look at Redis between steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bot import logs
from bot.jobs import QUEUE
from bot.settings import load_settings
from worker.app import build_worker
from worker.github.app import GitHubApp
from worker.jobs.queue import connect
from worker.jobs.services import SERVICES, Services, services

from .e2e import MODEL_KEY
from .fixtures import APP_ID
from .github import GitHubDouble
from .model_server import ScriptedModel
from .mull_process import MullCluster
from .services import job_ctx, make_services


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now


def web_env(tmp_path: Path, redis_url: str, double: GitHubDouble, model: ScriptedModel,
            private_pem: str) -> dict[str, str]:
    return {
        "MULL_APP_ID": str(APP_ID), "MULL_PRIVATE_KEY": private_pem,
        "MULL_WEBHOOK_SECRET": double.webhook_secret, "MULL_GITHUB_URL": double.url,
        "MULL_REDIS_URL": redis_url, "MULL_DATA_DIR": str(tmp_path / "data"),
        "MULL_LLM_BASE_URL": model.url, "MULL_LLM_MODEL": "scripted", "MULL_LLM_API_KEY": MODEL_KEY,
        "MULL_LOG_LEVEL": "ERROR", "MULL_AGENT_MAX_STEPS": "6",
    }


class InProcessMull:
    """``ctx`` is a worker's job context (for calling cron jobs and job functions); ``drain()`` runs the queue."""

    def __init__(self, env: dict[str, str], redis_url: str, double: GitHubDouble, clock: Clock) -> None:
        self.settings = load_settings(env, env_file=None)
        self.redis_url = redis_url
        self.double = double
        self.clock = clock
        self.ctx: dict[str, Any] = {}  # a job's ctx (job functions and cron jobs take it), holding ``svc``

    @property
    def svc(self) -> Services:
        return services(self.ctx)

    def set_environ(self, environ: dict[str, str]) -> None:
        """The environment sinks read their secrets from, for the in-process jobs and the drained worker."""
        self.ctx[SERVICES] = replace(self.svc, environ=environ)

    async def drain(self) -> None:
        """Run the jobs that are due, and those they enqueue, until none is due or running. Jobs deferred to
        later (a snooze's wake, a revision waiting for reviewers to be quiet) stay queued: arq's own burst
        mode would wait for them in real time."""
        redis = self.ctx["redis"]
        if self.double.hooks.idle() and not await self._due(redis):
            return
        worker = build_worker(self.settings, self.redis_url, poll_delay=0.02, handle_signals=False,
                              clock=self.clock, refresh_delay=0, with_cron=False, environ=self.svc.environ)
        main = asyncio.create_task(worker.main())
        try:
            idle = 0
            while idle < 3:  # three quiet looks in a row: nothing due, nothing running, no webhook on its way
                await asyncio.sleep(0.01)
                if main.done():
                    main.result()
                # The double sends the webhooks of Mull's own actions from a thread of its own: one still on
                # its way (a slow machine) would be a job this drain never saw.
                busy = not self.double.hooks.idle() or await self._due(redis) or any(
                    not t.done() for t in worker.tasks.values())
                idle = 0 if busy else idle + 1
        finally:
            worker.stop()  # a cancellation alone can be swallowed mid-command (worker/ops/steady_worker.py)
            main.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await main
            await worker.close()

    @staticmethod
    async def _due(redis: Any) -> int:
        return int(await redis.zcount(QUEUE, "-inf", time.time() * 1000 + 50))


@asynccontextmanager
async def in_process(tmp_path: Path, redis_url: str, double: GitHubDouble, model: ScriptedModel,
                     private_pem: str, clock: Clock) -> AsyncIterator[InProcessMull]:
    env = web_env(tmp_path, redis_url, double, model, private_pem)
    web = MullCluster(tmp_path, env)
    web.start_web()
    double.set_webhook(web.webhook_url)
    mull = InProcessMull(env, redis_url, double, clock)
    redis = await connect(redis_url)
    http = httpx.AsyncClient()
    mull.ctx.update(job_ctx(make_services(redis, github=GitHubApp(APP_ID, private_pem, double.url, redis),
                                          settings=mull.settings, log=logs.get("mull.test"), clock=clock,
                                          http=http, environ={}, refresh_delay=0)))
    try:
        yield mull
    finally:
        await http.aclose()
        await redis.aclose()
        web.stop()
