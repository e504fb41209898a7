"""The builtin critic against the scripted OpenAI-compatible model server (tests/doubles/model_server.py)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from doubles.gateway_rig import model_access
from doubles.model_server import ScriptedModel

from worker.agent.base import Budget
from worker.critique.builtin import BuiltinCritic
from worker.critique.diff import FileDiff
from worker.critique.run import CritiqueFailed, CritiqueOk, CritiqueOutcome, CritiqueTask

BUDGET = Budget(seconds=20, steps=10, tokens=200_000, command_seconds=10)
KEY = "sk-critic-secret"
PATCH = "@@ -1,2 +1,2 @@\n def answer():\n-    return 41\n+    return 42\n"
FILES = (FileDiff("app.py", "modified", PATCH, 1, 1),)
READ_ONLY_TOOLS = {"list_files", "read_file", "search", "read_diff", "changed_files"}


def good(**overrides: Any) -> dict[str, Any]:
    return {"summary": "Makes answer() return 42.\nCorrect and minimal.", "effort": 1, "risks": [], "security": [],
            "findings": [{"path": "app.py", "start_line": 2, "end_line": 2, "severity": "low",
                          "title": "Magic number", "why": "42 is unexplained.", "suggestion": "Name it."}],
            "tests": "none", "tests_note": "no test asserts 42", "verdict": "pass", **overrides}


def submit(arguments: dict[str, Any]) -> dict[str, Any]:
    return {"tool_calls": [{"name": "submit_critique", "arguments": arguments}]}


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    (path / "app.py").write_text("def answer():\n    return 42\n")
    return path


def critique(url: str, worktree: Path, key: str, budget: Budget = BUDGET) -> CritiqueOutcome:
    async def go() -> CritiqueOutcome:
        async with model_access(url, "scripted", budget.steps, budget.tokens, api_key=KEY) as access:
            task = CritiqueTask(prompt=f"Review pull request {key}.", worktree=worktree, files=FILES, model=access)
            return await BuiltinCritic(url).critique(task, budget)

    return asyncio.run(go())


def tool_results(request: dict[str, Any]) -> list[str]:
    return [m["content"] for m in request["body"]["messages"] if m["role"] == "tool"]


def test_reads_then_submits_a_valid_critique(scripted_model: ScriptedModel, worktree: Path) -> None:
    scripted_model.script("pr-ok", [
        {"tool_calls": [{"name": "read_file", "arguments": {"path": "app.py"}},
                        {"name": "read_diff", "arguments": {"path": "app.py"}},
                        {"name": "read_file", "arguments": {"path": "../outside.txt"}}]},
        {"tool_calls": [{"name": "changed_files", "arguments": {}}]},
        submit(good()),
    ])
    outcome = critique(scripted_model.url, worktree, "pr-ok")
    assert isinstance(outcome, CritiqueOk)
    assert outcome.critique.summary == "Makes answer() return 42.\nCorrect and minimal."
    assert outcome.critique.findings[0].title == "Magic number"
    assert outcome.steps == 3 and outcome.tokens > 0
    requests = scripted_model.requests_for("pr-ok")
    tools = {tool["function"]["name"] for tool in requests[0]["body"]["tools"]}
    assert tools == READ_ONLY_TOOLS | {"submit_critique"}  # nothing that writes or runs commands
    read, diff, outside = tool_results(requests[1])
    assert "return 42" in read
    assert diff.split("\n")[1:] == ["    1  def answer():", "      -    return 41", "    2 +    return 42"]
    assert "outside the repository" in outside
    assert tool_results(requests[2])[-1] == "app.py (modified, +1 -1)"
    assert (worktree / "app.py").read_text() == "def answer():\n    return 42\n"


def test_invalid_output_once_is_shown_to_the_model_and_corrected(scripted_model: ScriptedModel,
                                                                  worktree: Path) -> None:
    too_many = [good()["findings"][0]] * 6
    scripted_model.script("pr-retry", [submit(good(findings=too_many, effort=0)), submit(good())])
    outcome = critique(scripted_model.url, worktree, "pr-retry")
    assert isinstance(outcome, CritiqueOk) and outcome.steps == 2
    second = json.dumps(scripted_model.requests_for("pr-retry")[1]["body"]["messages"])
    assert "6 findings given but at most 5 are allowed" in second
    assert "greater than or equal to 1" in second


def test_invalid_output_twice_is_a_failure_not_an_exception(scripted_model: ScriptedModel, worktree: Path) -> None:
    scripted_model.script("pr-bad", [submit(good(summary="one\ntwo\nthree"))])
    outcome = critique(scripted_model.url, worktree, "pr-bad")
    assert isinstance(outcome, CritiqueFailed)
    assert outcome.reason == ("critique failed: the model's output was invalid twice: summary: summary has 3 lines "
                              "but at most 2 are allowed; shorten it and move details into findings, risks or "
                              "tests_note")
    assert len(scripted_model.requests_for("pr-bad")) == 2


def test_arguments_that_are_not_json_twice(scripted_model: ScriptedModel, worktree: Path) -> None:
    scripted_model.script("pr-garbage", [{"raw_arguments": {"name": "submit_critique", "arguments": "not json{"}}])
    outcome = critique(scripted_model.url, worktree, "pr-garbage")
    assert isinstance(outcome, CritiqueFailed)
    assert outcome.reason.startswith("critique failed: the model's output was invalid twice: ")
    assert "Invalid JSON" in outcome.reason and "\n" not in outcome.reason


def test_json_written_as_text_is_accepted_and_prose_gets_one_reminder(scripted_model: ScriptedModel,
                                                                       worktree: Path) -> None:
    scripted_model.script("pr-text", [{"content": "Looks fine to me."},
                                      {"content": f"Here it is:\n```json\n{json.dumps(good())}\n```"}])
    outcome = critique(scripted_model.url, worktree, "pr-text")
    assert isinstance(outcome, CritiqueOk) and outcome.critique.verdict == "pass"
    second = json.dumps(scripted_model.requests_for("pr-text")[1]["body"]["messages"])
    assert "call the submit_critique tool" in second.lower()


def test_model_server_down(worktree: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed when the block ends: nothing listens there
    outcome = critique(f"http://127.0.0.1:{port}/v1", worktree, "pr-down")
    assert isinstance(outcome, CritiqueFailed)
    assert outcome.reason.startswith("critique failed: model endpoint unreachable: http://127.0.0.1:")
    assert "\n" not in outcome.reason and "Traceback" not in outcome.reason


def test_http_5xx_without_the_api_key(scripted_model: ScriptedModel, worktree: Path) -> None:
    scripted_model.script("pr-5xx", [{"status": 503, "body": {"error": {"message": f"bad key {KEY}"}}}])
    outcome = critique(scripted_model.url, worktree, "pr-5xx")
    assert outcome == CritiqueFailed(reason="critique failed: model endpoint returned HTTP 503: bad key [redacted]")
    assert len(scripted_model.requests_for("pr-5xx")) == 2  # one transport retry


def test_wall_clock(scripted_model: ScriptedModel, worktree: Path) -> None:
    scripted_model.script("pr-slow", [{"sleep": 2, **submit(good())}])
    started = time.monotonic()
    outcome = critique(scripted_model.url, worktree, "pr-slow",
                       Budget(seconds=1, steps=10, tokens=100_000, command_seconds=10))
    assert time.monotonic() - started < 2.5
    assert isinstance(outcome, CritiqueFailed) and outcome.reason == "critique failed: wall clock (1 s) ran out"


def test_steps_budget(scripted_model: ScriptedModel, worktree: Path) -> None:
    scripted_model.script("pr-loop", [{"tool_calls": [{"name": "list_files", "arguments": {}}]}])
    outcome = critique(scripted_model.url, worktree, "pr-loop", Budget(seconds=20, steps=3, tokens=100_000,
                                                                       command_seconds=10))
    assert isinstance(outcome, CritiqueFailed)
    assert outcome.reason == "critique failed: budget exhausted: steps (3)" and outcome.steps == 3


def test_one_correction_in_all_even_across_text_and_tool_answers(scripted_model: ScriptedModel,
                                                                  worktree: Path) -> None:
    # pydantic-ai counts text and tool output retries apart, so it asks a third time; Mull refuses the answer.
    scripted_model.script("pr-mixed", [{"content": "Looks fine."}, submit(good(effort=0)), submit(good())])
    outcome = critique(scripted_model.url, worktree, "pr-mixed")
    assert outcome == CritiqueFailed(reason="critique failed: the model's output was invalid twice: effort: Input "
                                            "should be greater than or equal to 1", steps=3,
                                     tokens=outcome.tokens)
