"""The CLI critic: tiny shell-script "CLIs" that print JSON, Markdown or garbage; make_critic."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from doubles.gateway_rig import model_access
from doubles.sandboxes import SPECS, needs_bwrap

from worker.agent.base import Budget
from worker.agent.command import TemplateError
from worker.agent.sandbox import SandboxSpec
from worker.critique.command import CommandCritic
from worker.critique.run import CritiqueFailed, CritiqueOk, CritiqueOutcome, CritiqueTask, make_critic

BUDGET = Budget(seconds=20, steps=10, tokens=10_000, command_seconds=10)
UNCONFINED = SandboxSpec(enabled=False)
GOOD = {"summary": "Fine.\nReally.", "effort": 2, "findings": [], "tests": "covered", "verdict": "pass"}




@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    path = tmp_path / "work tree"
    path.mkdir()
    (path / "app.py").write_text("x = 1\n")
    return path


def cli(tmp_path: Path, script: str, arguments: str = "{prompt_file}") -> str:
    """A shell-script CLI in tmp_path/bin; the template hands it the prompt file as $1."""
    path = tmp_path / "bin" / "critic.sh"
    path.parent.mkdir(exist_ok=True)
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return f"'{path}' {arguments}"


def run(template: str, worktree: Path, spec: SandboxSpec = UNCONFINED, budget: Budget = BUDGET,
        env: dict[str, str] | None = None) -> CritiqueOutcome:
    # The script lives under /tmp, which the sandbox replaces with an empty tmpfs: bind its folder back in.
    spec = SandboxSpec(enabled=spec.enabled, ro_paths=(worktree.parent / "bin",))
    async def go() -> CritiqueOutcome:
        async with model_access("http://127.0.0.1:9/v1", "qwen", budget.steps, budget.tokens) as access:
            task = CritiqueTask(prompt="Review PR 5.", worktree=worktree, sandbox=spec, model=access)
            return await CommandCritic(template).critique(task, budget)

    return asyncio.run(go())


@pytest.mark.parametrize("spec", SPECS)
def test_json_on_stdout(tmp_path: Path, worktree: Path, spec: SandboxSpec) -> None:
    outcome = run(cli(tmp_path, f"cat <<'EOF'\n{json.dumps(GOOD)}\nEOF\n"), worktree, spec)
    assert isinstance(outcome, CritiqueOk)
    assert outcome.critique.summary == "Fine.\nReally." and (outcome.steps, outcome.tokens) == (1, 0)


def test_fenced_json_after_logs(tmp_path: Path, worktree: Path) -> None:
    script = f"echo 'thinking...' >&2\necho 'Review:'\nprintf '```json\\n%s\\n```\\n' '{json.dumps(GOOD)}'\n"
    outcome = run(cli(tmp_path, script), worktree)
    assert isinstance(outcome, CritiqueOk) and outcome.critique.effort == 2


def test_markdown_becomes_summary_and_details(tmp_path: Path, worktree: Path) -> None:
    script = "printf '## Review\\n\\nThe loop is off by one.\\n\\nDetails here.\\n\\nVerdict: fix\\n'\n"
    outcome = run(cli(tmp_path, script), worktree)
    assert isinstance(outcome, CritiqueOk)
    critique = outcome.critique
    assert critique.summary == "Review\nThe loop is off by one."
    assert critique.details == "Details here.\n\nVerdict: fix"
    assert (critique.verdict, critique.effort) == ("fix", 3)


def test_garbage_twice_fails_after_showing_the_error(tmp_path: Path, worktree: Path) -> None:
    log = tmp_path / "prompts.log"
    script = f"cat \"$1\" >> '{log}'\necho '{{\"summary\": \"cut off'\n"
    outcome = run(cli(tmp_path, script), worktree)
    assert isinstance(outcome, CritiqueFailed)
    assert outcome.reason == ("critique failed: the critique command's output was unusable twice: the answer is "
                              "not valid JSON; give one JSON object with the fields described")
    assert outcome.steps == 2
    prompts = log.read_text()
    assert prompts.count("Review PR 5.") == 2 and "Your previous answer could not be used: the answer is not" in prompts


def test_invalid_json_then_corrected(tmp_path: Path, worktree: Path) -> None:
    bad = json.dumps({**GOOD, "effort": 7})
    script = (f"if grep -q 'could not be used' \"$1\"; then printf '%s\\n' '{json.dumps(GOOD)}'; "
              f"else printf '%s\\n' '{bad}'; fi\n")
    outcome = run(cli(tmp_path, script), worktree)
    assert isinstance(outcome, CritiqueOk) and outcome.steps == 2


def test_nonzero_exit_reports_the_last_line_without_the_key(tmp_path: Path, worktree: Path) -> None:
    outcome = run(cli(tmp_path, "echo starting\necho \"auth failed for $OPENAI_API_KEY\" >&2\nexit 3\n"), worktree,
                  env={"OPENAI_API_KEY": "sk-very-secret-value"})
    assert outcome == CritiqueFailed(reason="critique failed: critique command exited with code 3: auth failed for "
                                            "[redacted]", steps=1)


def test_timeout(tmp_path: Path, worktree: Path) -> None:
    outcome = run(cli(tmp_path, "sleep 30\n"), worktree, budget=Budget(seconds=0.5, steps=1, tokens=1,
                                                                          command_seconds=1))
    assert outcome == CritiqueFailed(reason="critique failed: wall clock (0.5 s) ran out", steps=1)


def test_summary_file_wins_over_stdout(tmp_path: Path, worktree: Path) -> None:
    script = f"echo noise\nprintf '%s\\n' '{json.dumps(GOOD)}' > \"$2\"\n"
    outcome = run(cli(tmp_path, script, "{prompt_file} {summary_file}"), worktree)
    assert isinstance(outcome, CritiqueOk) and outcome.critique.summary == "Fine.\nReally."


@needs_bwrap
def test_the_worktree_is_read_only_under_the_sandbox(tmp_path: Path, worktree: Path) -> None:
    script = f"echo hacked > app.py 2>/dev/null; touch new.txt 2>/dev/null; printf '%s\\n' '{json.dumps(GOOD)}'\n"
    outcome = run(cli(tmp_path, script), worktree, SandboxSpec(enabled=True))
    assert isinstance(outcome, CritiqueOk)
    assert (worktree / "app.py").read_text() == "x = 1\n" and not (worktree / "new.txt").exists()


def test_template_errors_name_the_critique_variable() -> None:
    with pytest.raises(TemplateError, match=r"MULL_CRITIQUE_COMMAND must contain \{prompt_file\}"):
        CommandCritic("critic --no-prompt")


def test_make_critic() -> None:
    command = make_critic("critic {prompt_file}", "http://llm/v1")
    assert isinstance(command, CommandCritic) and command.template == "critic {prompt_file}"
    from worker.critique.builtin import BuiltinCritic

    assert isinstance(make_critic("  ", "http://llm/v1"), BuiltinCritic)


def test_the_cli_critic_gets_the_gateway_and_the_run_token_not_the_key(tmp_path: Path, worktree: Path) -> None:
    outcome = run(cli(tmp_path, f"env >&2; printf '%s\\n' '{json.dumps(GOOD)}'; env | grep -q '^OPENAI_MODEL=qwen$' "
                                "|| exit 9\n"), worktree)
    assert isinstance(outcome, CritiqueOk)
