"""Real `mull web` and `mull worker` processes against the GitHub double and the scripted model, for benchmarks.

The same doubles the end-to-end tests use (tests/doubles/): a GitHub REST and git smart-HTTP double, and an
OpenAI-compatible model that plays back scripts (here answering at once unless a turn says to sleep).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.doubles.e2e import MAINTAINER, cluster_env, settle, start_cluster  # noqa: E402
from tests.doubles.fixtures import APP_ID, INSTALLATION_ID, OWNER, REPO, SEED_FILES  # noqa: E402
from tests.doubles.github import GitHubDouble, generate_app_keypair  # noqa: E402
from tests.doubles.model_server import ScriptedModel  # noqa: E402
from tests.doubles.mull_process import MullCluster  # noqa: E402

__all__ = ["INSTALLATION_ID", "MAINTAINER", "REPO", "Rig", "rig", "wait_until"]


@dataclass
class Rig:
    github: GitHubDouble
    model: ScriptedModel
    cluster: MullCluster
    scratch: Path

    def log_events(self, event: str) -> list[tuple[float, dict[str, Any]]]:
        """(wall-clock time, log line) of every line the workers logged with this ``event``."""
        found = []
        for worker in self.cluster.workers:
            for line in worker.log().splitlines():
                if f'"{event}"' in line:
                    parsed = json.loads(line)
                    if parsed.get("event") == event:
                        at = datetime.fromisoformat(parsed["timestamp"].replace("Z", "+00:00")).timestamp()
                        found.append((at, parsed))
        return found

    def agent_starts(self) -> list[tuple[float, dict[str, Any]]]:
        return self.log_events("agent starting")

    def settle(self) -> None:
        """Until no webhook is in flight and no job runs or is due within a second."""
        settle(self.cluster, self.github, horizon=1.0)

    def pr_opened(self, number: int) -> bool:
        comments = [c for c in self.github.comments(REPO, number) if c.user.login == self.github.bot_login
                    and "mull:status" in c.body]
        return bool(comments) and '"phase":"pr-opened"' in comments[0].body


def wait_until(check: Callable[[], Any], what: str, rig: Rig | None = None, timeout: float = 120) -> Any:
    """Poll ``check`` until it is truthy; SystemExit naming ``what`` (and the workers' last log lines) if not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if rig and not all(p.alive() for p in [rig.cluster.web, *rig.cluster.workers] if p):
            break
        time.sleep(0.02)
    raise SystemExit(f"timed out waiting for {what}\n{rig.cluster.logs()[-3000:] if rig else ''}")


@contextlib.contextmanager
def rig(redis_url: str, files: dict[str, str] | None = None, workers: int = 1,
        **env: str) -> Iterator[Rig]:
    """The doubles and a Mull cluster (one web, ``workers`` workers) with ``acme/widgets`` installed."""
    private_pem, public_pem = generate_app_keypair()
    with tempfile.TemporaryDirectory(prefix="mull-bench-") as scratch_name:
        scratch = Path(scratch_name)
        with GitHubDouble(scratch / "github", public_pem, app_id=APP_ID) as github, ScriptedModel() as model:
            github.create_repo(REPO, files or SEED_FILES)
            github.add_installation(INSTALLATION_ID, OWNER)
            github.set_permission(REPO, MAINTAINER, "write")
            settings = cluster_env(scratch, redis_url, github, model,
                                   **{"MULL_PRIVATE_KEY": private_pem, "MULL_LOG_LEVEL": "INFO", **env})
            cluster = start_cluster(scratch, github, settings)
            try:
                for _ in range(workers - 1):
                    cluster.start_worker()
                yield Rig(github, model, cluster, scratch)
            finally:  # SIGKILL: a graceful shutdown takes seconds and is not what a benchmark measures
                for process in [*cluster.workers, cluster.web]:
                    if process:
                        process.kill()
                # The doubles' servers then cancel the requests Mull left waiting (a sleeping model turn), and
                # uvicorn logs each as an error: expected here, and not the benchmark's output.
                logging.getLogger("uvicorn.error").disabled = True
