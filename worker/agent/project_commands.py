"""The repository's own commands, run by Mull in the sandbox: ``setup:`` before the agent, ``test:`` after it.

Setup prepares the tree the way the repository's CI would (install dependencies, build) so the agent starts from
a working project instead of spending its budget on that; the tests are Mull's own check of the agent's work,
reported in the pull request and given to the critique. Both are the repository's code, as hostile as the
agent's, so they run exactly as agent commands do (``worker/agent/sandbox.py``), each under a wall-clock budget.

What comes back is a ``ProjectRun``: its verdict, and the last lines of the output with credential-shaped text
removed and terminal escapes stripped, small enough to keep in Redis and show on GitHub.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bot.redaction import scrub
from worker.agent.sandbox import SandboxSpec, run_command
from worker.egress import egress_proxy, for_setup
from worker.repo_config import RepoConfig

TAIL_LINES = 40
TAIL_CHARS = 4000
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class ProjectRun:
    """One setup or test run: ``ok``, the command it ended on, how long, how, and the output's tail."""

    ok: bool
    command: str  # setup: the command that failed (or the last one); tests: the test command
    seconds: float
    exit_code: int | None  # None when the budget ran out
    timed_out: bool
    tail: str
    blocked: tuple[tuple[str, int], ...] = ()  # host:port the egress proxy refused, and how often

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProjectRun:
        return cls(ok=bool(data["ok"]), command=str(data["command"]), seconds=float(data["seconds"]),
                   exit_code=None if data.get("exit_code") is None else int(data["exit_code"]),
                   timed_out=bool(data.get("timed_out")), tail=str(data.get("tail") or ""),
                   blocked=tuple((str(target), int(count)) for target, count in data.get("blocked") or ()))

    def how(self, budget: float | None = None) -> str:
        """``exited with code 1 after 3 s`` / ``did not finish within 600 s``, for messages."""
        if self.timed_out:
            return f"did not finish within {budget or self.seconds:.0f} s"
        return f"exited with code {self.exit_code} after {self.seconds:.0f} s"


class SetupFailed(Exception):
    """The repository's setup failed or ran out of time: the agent does not run. ``run`` says how."""

    def __init__(self, run: ProjectRun, budget: float) -> None:
        super().__init__(f"setup failed: `{run.command}` {run.how(budget)}")
        self.run = run
        self.budget = budget


def tail_of(output: str, lines: int = TAIL_LINES, chars: int = TAIL_CHARS) -> str:
    """The last ``lines`` lines (at most ``chars`` characters) of ``output``: escapes stripped, credentials removed."""
    text = _ESCAPES.sub("", output.replace("\r\n", "\n").replace("\r", "\n"))
    kept = text.rstrip("\n").split("\n")[-lines:]
    tail = "\n".join(kept)
    if len(tail) > chars:
        tail = "…" + tail[-chars:]
    return scrub(tail)


async def run_setup(commands: Sequence[str], tree: Path, spec: SandboxSpec, budget: float) -> ProjectRun:
    """Each command in a fresh shell, in order, in ``tree``; the first that fails (or outlasts what is left of
    ``budget``) stops the rest."""
    started = time.monotonic()
    outcome = ProjectRun(ok=True, command="", seconds=0.0, exit_code=0, timed_out=False, tail="")
    for command in commands:
        left = budget - (time.monotonic() - started)
        if left <= 0:
            return ProjectRun(ok=False, command=command, seconds=time.monotonic() - started, exit_code=None,
                              timed_out=True, tail="")
        done = await run_command(command, tree, spec, left)
        outcome = ProjectRun(ok=done.exit_code == 0 and not done.timed_out, command=command,
                             seconds=time.monotonic() - started, exit_code=done.exit_code, timed_out=done.timed_out,
                             tail=tail_of(done.output))
        if not outcome.ok:
            return outcome
    return outcome


async def setup_through_proxy(config: RepoConfig, tree: Path, spec: SandboxSpec,
                              allowed: Any) -> ProjectRun:
    """``config.setup`` in ``tree`` behind an egress proxy of its own, which lets through the operator's hosts
    (``allowed``) as ``network.allow`` narrows them; the outcome lists what the proxy refused."""
    async with egress_proxy(for_setup(allowed, config.network)) as egress:
        outcome = await run_setup(config.setup, tree, egress.confine(spec), config.setup_timeout)
        return dataclasses.replace(outcome, blocked=egress.blocked())


async def run_tests(command: str, tree: Path, spec: SandboxSpec, budget: float) -> ProjectRun:
    """The repository's test command on the agent's tree; passed when it exits 0 within ``budget``."""
    started = time.monotonic()
    done = await run_command(command, tree, spec, budget)
    return ProjectRun(ok=done.exit_code == 0 and not done.timed_out, command=command,
                      seconds=time.monotonic() - started, exit_code=done.exit_code, timed_out=done.timed_out,
                      tail=tail_of(done.output))
