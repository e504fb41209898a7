"""No file tool of the builtin agent runs while one of its commands is alive.

pydantic-ai runs one turn's tool calls concurrently. A command that rearranges the tree for its whole life
(a directory swapped with a link to Mull's own files, over and over) is the race the file tools must never
see: they wait for it to end, and then see only what it left. That holds because the command's processes
are all gone when run_command returns, which the last tests check on real processes.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from doubles.decoy_tree import SECRET, decoy_tree
from doubles.gateway_rig import model_access
from doubles.model_server import ScriptedModel
from doubles.sandboxes import SPECS, needs_bwrap, running

from worker.agent import builtin
from worker.agent.actions import ActionLog
from worker.agent.base import AgentResult, AgentTask, Budget
from worker.agent.builtin import BuiltinAgent
from worker.agent.sandbox import SandboxSpec, run_command
from worker.agent.workspace import Workspace

BUDGET = Budget(seconds=120, steps=10, tokens=1_000_000, command_seconds=90)
# Swaps d with the link x for its whole life, then leaves d a directory holding what the tools must see.
SWAPPER = ("i=0; while [ $i -lt 150 ]; do mv d d.tmp; mv x d; mv d x; mv d.tmp d; i=$((i+1)); done; "
           "echo FINAL > d/state.txt; echo swapped $i times")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = decoy_tree(tmp_path)
    (root / "x").symlink_to(tmp_path / "mull")
    return root


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


def run_agent(model: ScriptedModel, tree: Path, spec: SandboxSpec, key: str) -> AgentResult:
    async def go() -> AgentResult:
        async with model_access(model.url, "scripted", BUDGET.steps, BUDGET.tokens) as access:
            task = AgentTask(prompt=f"Task {key}.", worktree=tree, sandbox=spec, model=access)
            return await BuiltinAgent(model.url).run(task, BUDGET)

    return asyncio.run(go())


@pytest.mark.parametrize("spec", SPECS)
def test_file_tools_wait_for_a_swapping_command_and_see_only_its_final_state(
        scripted_model: ScriptedModel, tree: Path, spec: SandboxSpec) -> None:
    key = f"swap-{spec.enabled}"
    scripted_model.script(key, [
        {"tool_calls": [call("run_command", command=SWAPPER),
                        *[call("search", pattern="SECRET|decoy|FINAL") for _ in range(3)],
                        call("read_file", path="d/.env"), call("list_files", path="d"),
                        call("write_file", path="d/.env", content="rewritten\n")]},
        {"tool_calls": [call("finish", summary="done", not_done=[])]},
    ])
    result = run_agent(scripted_model, tree, spec, key)
    assert result.error is None, result
    last = scripted_model.requests_for(key)[-1]["body"]["messages"]
    results = [m["content"] for m in last if m["role"] == "tool"]
    assert results[0].startswith("exit code 0\nswapped 150 times")
    for searched in results[1:4]:  # after the command: its final state, never the directory behind the link
        assert searched.splitlines() == ["d/.env:1: decoy", "d/state.txt:1: FINAL"]
    assert results[4] == "1  decoy" and results[5] == "d/.env\nd/state.txt"
    assert results[6].startswith("overwrote d/.env")
    assert (tree / "d" / ".env").read_text() == "rewritten\n"
    assert (tree.parent / "mull" / ".env").read_text() == SECRET + "\n"
    assert all("from-the-workers-dotenv" not in text for text in results)


def test_a_file_tool_started_during_a_command_runs_after_it(tree: Path) -> None:
    deps = builtin._Deps(workspace=Workspace(tree), sandbox=SandboxSpec(enabled=False), command_seconds=30,
                         log=ActionLog())
    ctx: Any = SimpleNamespace(deps=deps)
    ended: list[float] = []

    async def go() -> str:
        command = asyncio.create_task(builtin.run_command(ctx, "sleep 1; echo late > d/late.txt"))
        command.add_done_callback(lambda _: ended.append(time.monotonic()))
        await asyncio.sleep(0.2)  # the command holds the tree now
        read = await builtin.read_file(ctx, "d/late.txt")
        assert ended, "the file tool ran while the command was alive"
        await command
        return read

    assert asyncio.run(go()) == "1  late"


LEFTOVERS = [
    "sleep {m}1 &",  # plain background
    "setsid sleep {m}2 &",  # its own session and process group
    "(setsid sh -c 'exec >/dev/null 2>&1 </dev/null; exec sleep {m}3' &)",  # detached, pipe closed
    "nohup sh -c 'trap \"\" HUP TERM; exec sleep {m}4' >/dev/null 2>&1 &",  # ignores polite signals
    "(setsid sh -c 'exec >/dev/null 2>&1; while :; do date +%N >> tick; done' &)",  # keeps writing the tree
]


@needs_bwrap
@pytest.mark.parametrize("ends", ["exits", "times out"])
def test_no_process_of_a_sandboxed_command_outlives_it(tmp_path: Path, ends: str) -> None:
    marker = f"100.{os.getpid()}{len(ends)}"
    command = "\n".join([*(line.format(m=marker) for line in LEFTOVERS), "sleep 0.5", "echo started"])
    if ends == "times out":
        command += "\nsleep 60"
    result = asyncio.run(run_command(command, tmp_path, SandboxSpec(enabled=True), 2 if ends == "times out" else 30))
    assert "started" in result.output and result.timed_out == (ends == "times out")
    assert running(marker) == []  # at once: nothing left that a file tool could race
    written = (tmp_path / "tick").stat().st_size
    time.sleep(0.3)
    assert (tmp_path / "tick").stat().st_size == written
