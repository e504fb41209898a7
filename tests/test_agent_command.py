"""The command backend: template rendering, and real shell-script "agents" run in a worktree."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest
from doubles.gateway_rig import UPSTREAM_KEY, model_access
from doubles.model_server import ScriptedModel
from doubles.sandboxes import SPECS

from worker.agent import make_agent
from worker.agent.base import AgentResult, AgentTask, Budget
from worker.agent.command import CommandAgent, TemplateError, render
from worker.agent.presets import PRESETS, Preset, gateway_env, resolve_command, resolve_preset
from worker.agent.sandbox import SandboxSpec

PROMPT = "Rename OLD to NEW in file.txt\nsecond line"
BUDGET = Budget(seconds=20, steps=10, tokens=10_000, command_seconds=10)




@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    path = tmp_path / "work tree"
    path.mkdir()
    (path / "file.txt").write_text("OLD value\n")
    return path


def run(agent: CommandAgent, worktree: Path, spec: SandboxSpec, budget: Budget = BUDGET,
        upstream: str = "http://127.0.0.1:9/v1") -> AgentResult:
    async def go() -> AgentResult:
        async with model_access(upstream, "qwen", budget.steps, budget.tokens) as access:
            return await agent.run(AgentTask(prompt=PROMPT, worktree=worktree, sandbox=spec, model=access), budget)

    return asyncio.run(go())


# -- rendering ---------------------------------------------------------------------------------------


def test_render_substitutes_inside_arguments_and_keeps_spaces_in_one_argument() -> None:
    argv = render("agent --message-file {prompt_file} --cwd={worktree} 'literal {\"json\": 1}'",
                  Path("/tmp/with space/prompt.md"), Path("/w t"))
    assert argv == ["agent", "--message-file", "/tmp/with space/prompt.md", "--cwd=/w t",
                    'literal {"json": 1}']


def test_render_summary_file_placeholder() -> None:
    argv = render("agent {prompt_file} -o {summary_file}", Path("/p"), Path("/w"), Path("/s.md"))
    assert argv == ["agent", "/p", "-o", "/s.md"]


def test_render_refuses_unknown_placeholder_naming_it_and_the_allowed_ones() -> None:
    with pytest.raises(TemplateError, match=r"unknown placeholder \{prompt\}.*\{prompt_file\}, \{worktree\}"):
        render("agent {prompt}", Path("/p"), Path("/w"))


def test_render_requires_prompt_file() -> None:
    with pytest.raises(TemplateError, match=r"MULL_AGENT_COMMAND must contain \{prompt_file\}"):
        render("agent --cwd {worktree}", Path("/p"), Path("/w"))


def test_render_refuses_unbalanced_quotes_and_empty_templates() -> None:
    with pytest.raises(TemplateError, match="quotes"):
        render("agent '{prompt_file}", Path("/p"), Path("/w"))
    with pytest.raises(TemplateError, match="empty"):
        render("   ", Path("/p"), Path("/w"))


def test_agent_refuses_a_bad_template_at_construction() -> None:
    with pytest.raises(TemplateError):
        CommandAgent(resolve_preset("agent --no-prompt"))


def test_presets_render_and_resolve() -> None:
    for name, preset in PRESETS.items():
        argv = render(preset.template, Path("/tmp/a b/prompt.md"), Path("/w"), Path("/s"))
        assert "/tmp/a b/prompt.md" in argv, name
    assert resolve_command("aider").startswith("aider --model openai/{model} --yes-always --no-auto-commits")
    assert resolve_preset("aider").env["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    assert resolve_preset("mini-swe-agent").env["MSWEA_CONFIGURED"] == "true"
    assert resolve_command("my-agent {prompt_file}") == "my-agent {prompt_file}"


def test_make_agent_picks_the_backend() -> None:
    aider = make_agent("aider", "http://llm:8080/v1")
    assert isinstance(aider, CommandAgent) and aider.preset is PRESETS["aider"]
    custom = make_agent("run-agent {prompt_file}", "http://llm:8080/v1")
    assert isinstance(custom, CommandAgent) and custom.template == "run-agent {prompt_file}"
    builtin = make_agent("  ", "http://llm:8080/v1")
    assert type(builtin).__name__ == "BuiltinAgent"


def test_presets_point_at_the_gateway_with_the_run_token_never_the_endpoint() -> None:
    env = gateway_env(PRESETS["aider"], "http://127.0.0.1:41414", "run-token", "qwen")
    assert env["OPENAI_API_KEY"] == "run-token" and env["OPENAI_API_BASE"] == "http://127.0.0.1:41414/v1"
    assert "--model openai/{model}" in PRESETS["aider"].template
    claude = gateway_env(PRESETS["claude"], "http://127.0.0.1:41414", "run-token", "opus")
    assert claude["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:41414" and claude["ANTHROPIC_MODEL"] == "opus"
    custom = gateway_env(resolve_preset("x {prompt_file}"), "http://g", "t", "m")
    assert custom == {"OPENAI_API_KEY": "t", "OPENAI_BASE_URL": "http://g/v1", "OPENAI_MODEL": "m"}


# -- running -----------------------------------------------------------------------------------------

EDITING_AGENT = (
    "sh -c 'head -n 1 \"$1\"; sed -i s/OLD/NEW/ file.txt; echo \"edited file.txt in $PWD\"' "
    "agent {prompt_file}"
)


@pytest.mark.parametrize("spec", SPECS)
def test_command_agent_edits_the_worktree_and_reports_its_output(worktree: Path, spec: SandboxSpec) -> None:
    result = run(CommandAgent(resolve_preset(EDITING_AGENT)), worktree, spec)
    assert (worktree / "file.txt").read_text() == "NEW value\n"
    assert sorted(p.name for p in worktree.iterdir()) == ["file.txt"]  # the prompt file lives elsewhere
    assert result.error is None and result.budget_tripped is None
    assert "Rename OLD to NEW in file.txt" in result.summary
    assert f"edited file.txt in {worktree}" in result.summary
    assert result.summary.startswith("The agent (`sh`) exited with code 0")


@pytest.mark.parametrize("spec", SPECS)
def test_summary_file_becomes_the_summary(worktree: Path, spec: SandboxSpec) -> None:
    agent = CommandAgent(resolve_preset("sh -c 'echo noise; printf \"## Renamed\\nOLD is NEW now\" > \"$2\"' "
                                        "agent {prompt_file} {summary_file}"))
    result = run(agent, worktree, spec)
    assert result.summary == "## Renamed\nOLD is NEW now"


def test_env_reaches_the_agent_but_mull_secrets_do_not(worktree: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MULL_WEBHOOK_SECRET", "hook-secret")
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_x")
    agent = CommandAgent(resolve_preset("sh -c 'env; : \"$1\"' agent {prompt_file}"))
    result = run(agent, worktree, SandboxSpec(enabled=False))
    assert "OPENAI_API_KEY=" in result.summary and "OPENAI_MODEL=qwen" in result.summary
    assert UPSTREAM_KEY not in result.summary  # the run's token, never the endpoint's key
    assert "hook-secret" not in result.summary and "ghs_x" not in result.summary
    with pytest.raises(ValueError, match="GITHUB_TOKEN"):
        CommandAgent(Preset("a {prompt_file}", env={"GITHUB_TOKEN": "x"}))


@pytest.mark.parametrize("spec", SPECS)
def test_timeout_trips_the_wall_clock_budget(worktree: Path, spec: SandboxSpec) -> None:
    agent = CommandAgent(resolve_preset("sh -c 'echo working; sed -i s/OLD/NEW/ file.txt; sleep 60' agent "
                                        "{prompt_file}"))
    started = time.monotonic()
    result = run(agent, worktree, spec, Budget(seconds=1, steps=1, tokens=1, command_seconds=1))
    assert time.monotonic() - started < 5
    assert result.budget_tripped == "wall clock (1 s)"
    assert result.error is None
    assert "working" in result.summary
    assert (worktree / "file.txt").read_text() == "NEW value\n"  # what it did before the trip stays


def test_failing_agent_sets_error_and_keeps_output(worktree: Path) -> None:
    backticks_then_fail = ("sh -c 'printf \"\\\\140\\\\140\\\\140\\\\n\"; echo boom >&2; exit 2' "
                           "agent {prompt_file}")
    result = run(CommandAgent(resolve_preset(backticks_then_fail)), worktree, SandboxSpec(enabled=False))
    assert result.error == "agent command exited with code 2"
    assert "boom" in result.summary
    assert "````text" in result.summary  # fence longer than any backtick run in the output


def test_missing_program_is_an_error_not_an_exception(worktree: Path) -> None:
    result = run(CommandAgent(resolve_preset("no-such-agent-xyz {prompt_file}")), worktree, SandboxSpec(enabled=False))
    assert result.error is not None and "no-such-agent-xyz" in result.error
    assert result.summary


# -- the model gateway -------------------------------------------------------------------------------

# A CLI "agent" in Python that asks its model for the new text through whatever OPENAI_* it was given.
ASKING_AGENT = (
    f"{os.path.realpath(sys.executable)} -I -c '"
    "import json, os, sys, time, urllib.request\n"
    "for turn in range(int(sys.argv[1])):\n"
    "    body = json.dumps({\"model\": \"any\", \"messages\": [{\"role\": \"user\", \"content\": \"KEY-ask\"}]})\n"
    "    url = os.environ[\"OPENAI_BASE_URL\"] + \"/chat/completions\"\n"
    "    req = urllib.request.Request(url, body.encode(),\n"
    "        {\"Authorization\": \"Bearer \" + os.environ[\"OPENAI_API_KEY\"],\n"
    "         \"Content-Type\": \"application/json\"})\n"
    "    try:\n"
    "        answer = json.load(urllib.request.urlopen(req))[\"choices\"][0][\"message\"][\"content\"]\n"
    "    except urllib.error.HTTPError as exc:\n"
    "        print(\"refused\", exc.code, flush=True)\n"
    "        time.sleep(60)\n"
    "    open(\"file.txt\", \"w\").write(answer + \"\\n\")\n"
    "' {count} {prompt_file}"
)


def _asking(count: int) -> CommandAgent:
    return CommandAgent(resolve_preset(ASKING_AGENT.replace("{count}", str(count))))


@pytest.mark.parametrize("spec", SPECS)
def test_a_cli_agent_reaches_its_model_through_the_gateway_with_a_run_token(
        worktree: Path, spec: SandboxSpec, scripted_model: ScriptedModel) -> None:
    scripted_model.script("KEY-ask", [{"content": "NEW value"}])
    result = run(_asking(1), worktree, spec, upstream=scripted_model.url)
    assert (worktree / "file.txt").read_text() == "NEW value\n", result.summary
    assert result.error is None and (result.steps, result.budget_tripped) == (1, None) and result.tokens > 0
    [request] = scripted_model.requests
    assert request["authorization"] == f"Bearer {UPSTREAM_KEY}"  # the gateway's key, added on the way out
    assert request["body"]["model"] == "qwen"  # the model Mull runs, whatever the agent asked for


@pytest.mark.parametrize("spec", SPECS)
def test_a_spent_step_budget_ends_a_cli_agent_and_says_so(worktree: Path, spec: SandboxSpec,
                                                          scripted_model: ScriptedModel) -> None:
    scripted_model.script("KEY-ask", [{"content": "NEW value"}])
    started = time.monotonic()
    result = run(_asking(10), worktree, spec, Budget(seconds=60, steps=2, tokens=100_000, command_seconds=10),
                 upstream=scripted_model.url)
    assert time.monotonic() - started < 30  # ended by Mull after the refusal, not by the 60 s wall clock
    assert result.budget_tripped == "steps (2)" and result.steps == 2
    assert len(scripted_model.requests) == 2  # the third request never left the gateway
    assert (worktree / "file.txt").read_text() == "NEW value\n"  # the work before the trip stays
