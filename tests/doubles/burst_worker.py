"""A real arq worker run in burst mode against a test Redis: it does what is queued, then returns.

GitHub is a respx mock that answers only the installations list the worker reconciles at start-up, so a job
that talks to GitHub fails the way an unreachable API would.
"""

from __future__ import annotations

from pathlib import Path

import respx
from arq import Worker

from bot.settings import load_settings
from worker.app import build_worker

API = "https://ghe.example.com/api/v3"


async def run_burst(redis_url: str, data_dir: Path, private_key: str) -> Worker:
    """Run every queued job once (with its retries) and return the closed worker for its counters."""
    env = {"MULL_APP_ID": "1", "MULL_PRIVATE_KEY": private_key, "MULL_GITHUB_URL": API,
           "MULL_LLM_BASE_URL": "http://model.invalid/v1", "MULL_LLM_MODEL": "m", "MULL_SANDBOX": "false",
           "MULL_DATA_DIR": str(data_dir)}
    worker = build_worker(load_settings(env, env_file=None), redis_url, burst=True, poll_delay=0,
                          handle_signals=False, with_cron=False)
    try:
        with respx.mock(assert_all_called=False) as mock:
            mock.get(f"{API}/app/installations").respond(200, json=[])  # the worker's startup reconcile
            await worker.main()
    finally:
        await worker.close()
    return worker
