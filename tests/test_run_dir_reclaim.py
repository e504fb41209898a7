"""Trees of runs whose worker was killed are removed when a worker starts, even with Redis down, and by a
periodic job; a tree that may still belong to a live run is kept."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from doubles.services import job_ctx, make_services

from bot.settings import load_settings
from worker.app import build_worker, reclaim_run_dirs, stale_run_age
from worker.trees.repo_cache import RepoCache

NO_REDIS = "redis://127.0.0.1:1/0"  # nothing listens there


def settings_for(data: Path, keypair: Any) -> Any:
    return load_settings({"MULL_APP_ID": "1", "MULL_PRIVATE_KEY": keypair[0],
                          "MULL_LLM_BASE_URL": "http://model.invalid/v1", "MULL_LLM_MODEL": "m",
                          "MULL_SANDBOX": "false", "MULL_DATA_DIR": str(data)}, env_file=None)


def run_dirs(data: Path, age: float) -> tuple[Path, Path]:
    runs = data / "repos" / "runs"
    stale, fresh = runs / "solve-1-2-dead", runs / "solve-1-3-live"
    for run in (stale, fresh):
        (run / "tree" / "src").mkdir(parents=True)
        (run / "tree" / "src" / "a.py").write_text("x = 1\n")
    old = time.time() - age - 60
    os.utime(stale, (old, old))
    return stale, fresh


def test_a_starting_worker_reclaims_dead_runs_trees_without_redis(tmp_path: Path, app_keypair: Any) -> None:
    settings = settings_for(tmp_path / "data", app_keypair)
    stale, fresh = run_dirs(tmp_path / "data", stale_run_age(settings))
    build_worker(settings, NO_REDIS, burst=True, handle_signals=False, with_cron=False)
    assert not stale.exists()
    assert (fresh / "tree" / "src" / "a.py").exists()


def test_the_periodic_job_reclaims_them_from_the_file_system_only(tmp_path: Path, app_keypair: Any) -> None:
    stale, fresh = run_dirs(tmp_path / "data", 3600)

    async def scenario() -> int:
        cache = RepoCache(  # no Redis at all: the sweep must not need it
            tmp_path / "data" / "repos", stale_after=3600)

        class Log:
            def warning(self, *args: object, **kw: object) -> None:
                pass

        return await reclaim_run_dirs(job_ctx(make_services(None, repos=cache, log=Log())))

    assert asyncio.run(scenario()) == 1
    assert not stale.exists() and fresh.exists()
