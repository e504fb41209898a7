"""A model's regular expression cannot freeze the worker: matching is timed and lets go of the GIL.

The agent's and the critic's ``search`` share Workspace.search; both are checked.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from worker.agent import workspace as workspace_module
from worker.agent.search_pattern import MAX_EXPANSION, MAX_PATTERN_CHARS
from worker.agent.workspace import Workspace, WorkspaceError
from worker.critique import builtin as critic

CATASTROPHIC = "(a|a)+$"  # exponential backtracking in re and regex alike
# Unbounded, the pattern backtracks 2**40 times over data.txt: hours. Ending within the budget plus this slack
# (room for a loaded machine, not a timing claim) shows the budget stopped it.
SLACK_S = 20


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    root.mkdir()
    (root / "data.txt").write_text("a" * 40 + "!\n")
    (root / "app.py").write_text("def answer():\n    return 42\n")
    return root


@pytest.fixture
def budget(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr(workspace_module, "SEARCH_SECONDS", 1.0)
    return 1.0


def test_a_catastrophic_pattern_ends_in_a_clear_error_within_the_budget(tree: Path, budget: float) -> None:
    started = time.monotonic()
    with pytest.raises(WorkspaceError, match=r"took longer than the search's 1 s \(at 'data.txt'\); simplify it"):
        Workspace(tree).search(CATASTROPHIC)
    assert time.monotonic() - started < budget + SLACK_S


def test_the_event_loop_keeps_running_while_a_pattern_backtracks(tree: Path, budget: float) -> None:
    gaps: list[float] = []

    async def heartbeat() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.02)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    async def go() -> str:
        beat = asyncio.create_task(heartbeat())
        try:
            return await asyncio.to_thread(lambda: _outcome(lambda: Workspace(tree).search(CATASTROPHIC)))
        finally:
            beat.cancel()

    assert "took longer than" in asyncio.run(go())
    assert len(gaps) > 10 and max(gaps) < 0.5  # the GIL was released while matching


def test_the_critics_search_tool_gets_the_same_error(tree: Path, budget: float) -> None:
    ctx: Any = SimpleNamespace(deps=critic._Deps(workspace=Workspace(tree), files={}))
    started = time.monotonic()
    assert critic.search(ctx, CATASTROPHIC).startswith(f"error: the pattern {CATASTROPHIC!r} took longer than")
    assert time.monotonic() - started < budget + SLACK_S
    assert critic.search(ctx, r"return \d+") == "app.py:2: return 42"


@pytest.mark.parametrize("pattern", ["(?:a{1000}){1000}", "(?:(?:x{30}){30}){30}", "\\w{65535}"])
def test_patterns_that_expand_when_compiled_are_refused_before_compiling(tree: Path, pattern: str) -> None:
    started = time.monotonic()
    with pytest.raises(WorkspaceError, match=f"repeats too much .*over {MAX_EXPANSION}"):
        Workspace(tree).search(pattern)
    assert time.monotonic() - started < 0.5  # regex.compile would take seconds and hundreds of MB


def test_long_deep_and_invalid_patterns_are_refused_with_what_to_do(tree: Path) -> None:
    workspace = Workspace(tree)
    with pytest.raises(WorkspaceError, match=f"over the limit of {MAX_PATTERN_CHARS}; search for a shorter"):
        workspace.search("a" * (MAX_PATTERN_CHARS + 1))
    with pytest.raises(WorkspaceError, match="nests groups too deeply"):
        workspace.search("(" * 490 + "a" + ")" * 490)
    with pytest.raises(WorkspaceError, match="invalid regular expression"):
        workspace.search("(unclosed")


def test_ordinary_patterns_still_match_line_by_line(tree: Path) -> None:
    workspace = Workspace(tree)
    assert workspace.search(r"^\s+return \d{2}$") == "app.py:2: return 42"
    assert workspace.search(r"(?i)DEF \w+\(") == "app.py:1: def answer():"
    assert workspace.search(r"a{40}!") == "data.txt:1: " + "a" * 40 + "!"
    across = r"answer\(\):\n"  # lines are matched one at a time, as before
    assert workspace.search(across) == f"no matches for {across!r} under '.'"


def _outcome(operation: Any) -> str:
    try:
        return str(operation())
    except WorkspaceError as exc:
        return str(exc)
