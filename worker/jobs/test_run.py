"""Mull's own test run of a commit, kept in Redis by commit SHA: the job that made the commit writes it, and the
pull request body, the critique of that head and its release for review read it (also on another worker, after a
rerun). JSON only, and no secret: the output's tail was scrubbed when it was taken."""

from __future__ import annotations

import json
from typing import Any

from bot import keys
from worker.agent.project_commands import ProjectRun

KEEP_S = 30 * 24 * 3600  # as long as a pull request may wait for its critique and its review


async def keep(redis: Any, repo_id: int, sha: str, run: ProjectRun) -> None:
    await redis.set(keys.test_run(repo_id, sha), json.dumps(run.to_json()), ex=KEEP_S)


async def of(redis: Any, repo_id: int, sha: str) -> ProjectRun | None:
    """The test run of ``sha``; None when Mull did not run tests on it (no ``test:``, or it expired)."""
    raw = await redis.get(keys.test_run(repo_id, sha))
    if not raw:
        return None
    try:
        return ProjectRun.from_json(json.loads(raw))
    except (ValueError, KeyError, TypeError):
        return None  # damaged: as if never run
