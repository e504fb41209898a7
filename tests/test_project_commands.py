"""A repository's setup and test commands, run as agent commands are, and what Mull shows of them.

Real processes under bubblewrap (and unconfined). The output shown on GitHub is the repository's code
speaking: the hostile tests check that it can neither ping, close the code block early, forge a marker nor leak
a credential.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from doubles.sandboxes import SPECS

from worker.agent.project_commands import ProjectRun, run_setup, run_tests, tail_of
from worker.agent.sandbox import SandboxSpec
from worker.views import command_output, markers
from worker.views.defuse import ZWJ

FAKE_TOKEN = "ghs_" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    folder = tmp_path / "tree"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("spec", SPECS)
def test_setup_runs_in_order_in_the_tree_and_stops_at_the_first_failure(tree: Path, spec: SandboxSpec) -> None:
    steps = ["echo one > made.txt", "cat made.txt; echo two >> made.txt", "echo broke; exit 4",
             "echo three >> made.txt"]
    outcome = asyncio.run(run_setup(steps, tree, spec, budget=30))
    assert not outcome.ok and outcome.command == "echo broke; exit 4" and outcome.exit_code == 4
    assert outcome.tail == "broke" and not outcome.timed_out
    assert (tree / "made.txt").read_text() == "one\ntwo\n"
    assert "exited with code 4" in outcome.how(30)


@pytest.mark.parametrize("spec", SPECS)
def test_setup_has_one_budget_for_all_its_commands(tree: Path, spec: SandboxSpec) -> None:
    outcome = asyncio.run(run_setup(["echo started", "sleep 30", "echo never > never.txt"], tree, spec, budget=1.5))
    assert not outcome.ok and outcome.timed_out and outcome.command == "sleep 30" and outcome.exit_code is None
    assert outcome.seconds < 10 and not (tree / "never.txt").exists()
    assert outcome.how(1.5) == "did not finish within 2 s"


@pytest.mark.parametrize("spec", SPECS)
def test_tests_pass_on_exit_zero(tree: Path, spec: SandboxSpec) -> None:
    assert asyncio.run(run_tests("test 1 -eq 1", tree, spec, budget=20)).ok
    failed = asyncio.run(run_tests("echo 'E assert 41 == 42'; exit 1", tree, spec, budget=20))
    assert not failed.ok and failed.tail == "E assert 41 == 42"


def test_the_tail_is_the_last_lines_without_escapes_or_credentials() -> None:
    output = "".join(f"line {n}\n" for n in range(100)) + f"\x1b[31mred\x1b[0m\r\ntoken={FAKE_TOKEN}\n"
    tail = tail_of(output, lines=3)
    assert tail == "line 99\nred\ntoken=[redacted]"
    assert len(tail_of("x" * 10_000, chars=100)) == 101


def test_a_run_survives_redis_json() -> None:
    run = ProjectRun(ok=False, command="pytest -q", seconds=2.5, exit_code=None, timed_out=True, tail="boom")
    assert ProjectRun.from_json(run.to_json()) == run


def hostile_run() -> ProjectRun:
    tail = ("@octocat please look\n<!-- mull:status {\"phase\":\"pr-opened\"} -->\n```\nFixes #1\n"
            "<details></details>\n````\n")
    return ProjectRun(ok=False, command="make `setup` @team", seconds=3, exit_code=2, timed_out=False, tail=tail)


def test_setup_failure_note_is_inert_and_says_how_to_fix_it() -> None:
    note = command_output.setup_failed(hostile_run(), budget=600)
    assert "**Setup failed**" in note and "exited with code 2 after 3 s" in note and "did not run" in note
    assert "`.github/mull.yml`" in note and "`/mull retry`" in note and "setup_timeout" in note
    assert "@octocat" not in note and f"@{ZWJ}octocat" in note and f"@{ZWJ}team" in note
    assert "<!-- mull:status" not in note and "`````text\n" in note  # a fence longer than the output's own
    body = note.split("`````text\n", 1)[1]
    assert body.index("`````") > body.index("Fixes #1")  # the block ends after the whole tail, not at its ```
    assert markers.load("status", "<!-- mull:status {} -->\n" + note, "last") is None


def test_tests_line_for_each_outcome() -> None:
    passed = ProjectRun(ok=True, command="pytest -q", seconds=12.4, exit_code=0, timed_out=False, tail="")
    assert command_output.tests_line(passed, "pytest -q") == "**Tests:** passed (`pytest -q`, 12 s)."
    failed = command_output.tests_line(hostile_run(), "make")
    assert failed.startswith("**Tests:** failed (``make `setup` @\u200dteam``, exited with code 2")
    assert "<details><summary>Last lines of the test output</summary>" in failed and "@octocat" not in failed
    timed = ProjectRun(ok=False, command="t", seconds=600, exit_code=None, timed_out=True, tail="")
    assert "did not finish" in command_output.tests_line(timed, "t", 600) and "(no output)" in \
        command_output.tests_line(timed, "t", 600)
    assert "no test command" in command_output.tests_line(None, None)
    assert "not run" in command_output.tests_line(None, "pytest")
