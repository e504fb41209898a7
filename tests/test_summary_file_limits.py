"""A CLI agent's or critic's {summary_file} is read only up to its limit, and only if it is a regular file.

The command can make the file huge and sparse (free for it, its full size for the worker to read) or,
unconfined, replace it with a FIFO (a read that never returns).
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from pathlib import Path

import pytest
from doubles.gateway_rig import model_access
from doubles.sandboxes import SPECS

from worker.agent.base import AgentResult, AgentTask, Budget
from worker.agent.command import SUMMARY_LIMIT, CommandAgent
from worker.agent.presets import resolve_preset
from worker.agent.sandbox import SandboxSpec
from worker.critique.command import OUTPUT_LIMIT, CommandCritic
from worker.critique.run import CritiqueFailed, CritiqueOutcome, CritiqueTask

BUDGET = Budget(seconds=20, steps=10, tokens=10_000, command_seconds=10)
CUT = f"\n\n[the agent's summary was cut at {SUMMARY_LIMIT} characters]"


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    path = tmp_path / "tree"
    path.mkdir()
    return path


def run_agent(script: str, worktree: Path, spec: SandboxSpec) -> tuple[AgentResult, int, float]:
    """The result of a CLI agent running ``script`` (its $2 is the summary file), Python's peak memory, seconds."""
    agent = CommandAgent(resolve_preset(f"sh -c '{script}' agent {{prompt_file}} {{summary_file}}"))

    async def go() -> AgentResult:
        async with model_access("http://127.0.0.1:9/v1", "m", BUDGET.steps, BUDGET.tokens) as access:
            return await agent.run(AgentTask(prompt="p", worktree=worktree, sandbox=spec, model=access), BUDGET)

    started = time.monotonic()
    tracemalloc.start()
    try:
        result = asyncio.run(go())
        return result, tracemalloc.get_traced_memory()[1], time.monotonic() - started
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("spec", SPECS)
def test_a_sparse_summary_file_is_read_only_up_to_the_limit(worktree: Path, spec: SandboxSpec) -> None:
    result, peak, _ = run_agent('truncate -s 4G "$2"', worktree, spec)
    assert result.summary.endswith(CUT) and len(result.summary) == SUMMARY_LIMIT + len(CUT)
    assert peak < 20 << 20


def test_a_long_summary_is_cut_with_a_note(worktree: Path) -> None:
    result, _, _ = run_agent('yes "All done." | head -c 1000000 > "$2"', worktree, SandboxSpec(enabled=False))
    assert result.summary.startswith("All done.\nAll done.") and result.summary.endswith(CUT)
    assert len(result.summary) == SUMMARY_LIMIT + len(CUT)
    short, _, _ = run_agent('printf "## Done\\n" > "$2"', worktree, SandboxSpec(enabled=False))
    assert short.summary == "## Done"


def test_a_summary_file_replaced_by_a_fifo_is_not_waited_on(worktree: Path) -> None:
    result, _, seconds = run_agent('rm "$2"; mkfifo "$2"; echo made a fifo', worktree, SandboxSpec(enabled=False))
    assert seconds < 10 and "made a fifo" in result.summary  # the output stands in for the summary


def critique(script: str, worktree: Path, spec: SandboxSpec) -> tuple[CritiqueOutcome, int]:
    critic = CommandCritic(f"sh -c '{script}' critic {{prompt_file}} {{summary_file}}")

    async def go() -> CritiqueOutcome:
        async with model_access("http://127.0.0.1:9/v1", "m", BUDGET.steps, BUDGET.tokens) as access:
            task = CritiqueTask(prompt="Review PR 5.", worktree=worktree, sandbox=spec, model=access)
            return await critic.critique(task, BUDGET)

    tracemalloc.start()
    try:
        outcome = asyncio.run(go())
        return outcome, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("spec", SPECS)
def test_a_critics_oversized_summary_file_fails_the_critique_clearly(worktree: Path, spec: SandboxSpec) -> None:
    outcome, peak = critique('truncate -s 4G "$2"', worktree, spec)
    reason = (f"critique failed: the critique command wrote more than {OUTPUT_LIMIT} bytes to its summary file, "
              "or replaced it; a critique is far smaller")
    assert outcome == CritiqueFailed(reason=reason, steps=1)
    assert peak < 20 << 20
