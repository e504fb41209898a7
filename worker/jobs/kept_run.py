"""An agent run's outcome, kept in Redis between its commit and its push: a rerun resumes from it.

A worker can die anywhere in a run; arq then runs the job again. Without this, a kill after the agent finished
(while committing, pushing, or opening the pull request) ran the agent a second time: minutes of model time, and
a different answer. The result and the commit are kept before the push, so the rerun pushes that commit (if it
did not land) and goes on to the pull request. The commit itself is in this machine's mirror; a rerun on a
machine whose mirror lacks it runs the agent again, as does one that finds the branch moved meanwhile.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Any

from worker.agent.base import AgentResult

KEEP_S = 7 * 24 * 3600  # longer than any rerun of the job that made it


@dataclass(frozen=True)
class BranchRun:
    result: AgentResult
    sha: str | None  # the commit to push; None when the agent changed nothing
    base_sha: str | None  # the branch head the run started from (None: the branch did not exist)
    resumed: bool = False  # taken from an earlier try of the job: the agent did not run again


async def keep(redis: Any, key: str, run: BranchRun) -> None:
    """As JSON, never a pickle: what Redis holds must never be able to run code in a worker."""
    await redis.set(key, json.dumps({"result": asdict(run.result), "sha": run.sha, "base_sha": run.base_sha}),
                    ex=KEEP_S)


async def kept(redis: Any, key: str) -> BranchRun | None:
    raw = await redis.get(key)
    if not raw:
        return None
    fields = json.loads(raw)
    result = fields["result"]
    blocked = tuple((str(target), int(count)) for target, count in result.get("blocked", ()))
    return BranchRun(result=AgentResult(**{**result, "not_done": tuple(result["not_done"]), "blocked": blocked}),
                     sha=fields["sha"],
                     base_sha=fields["base_sha"])


def resumed(run: BranchRun) -> BranchRun:
    return replace(run, resumed=True)
