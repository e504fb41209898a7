"""Start-up checks: every problem a command would hit, in one message before anything starts: invalid values,
missing settings, agent programs that are not installed or not visible to the sandbox, and a model server that
refuses the key, lacks /v1 or the model. Bad cases beside the good ones."""

from __future__ import annotations

import asyncio
import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest
from doubles.model_server import ScriptedModel
from doubles.mull_process import MULL, free_port
from doubles.recording_log import RecordingLog

from bot.settings import ConfigError, load_settings, read_settings
from worker.agent.startup_check import agent_problems
from worker.ops import startup_check
from worker.ops.model_probe import worker_start_problems


def _program(folder: Path, name: str, shebang: str = "#!/bin/sh") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"{shebang}\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def no_programs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Agent commands' PATH: one empty directory of the test's, then the system's (which has no agents)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", f"{folder}:/usr/bin:/bin")
    return folder


def test_a_preset_whose_program_is_missing_says_which_and_how_to_install_it(no_programs: Path) -> None:
    settings = load_settings({"MULL_AGENT_COMMAND": "aider", "MULL_SANDBOX": "false"}, env_file=None)
    assert agent_problems(settings) == [
        "MULL_AGENT_COMMAND=aider: the program `aider` is not installed (not found on PATH): install it (`pipx "
        "install aider-chat`), or set MULL_AGENT_COMMAND to another preset (claude, codex, mini-swe-agent), or unset "
        "it for the builtin agent"]
    _program(no_programs, "aider")
    assert agent_problems(settings) == []


def test_every_preset_repositories_may_pick_is_checked(no_programs: Path) -> None:
    settings = load_settings({"MULL_AGENT_PRESETS": "aider,mini-swe-agent,codex", "MULL_SANDBOX": "false"},
                             env_file=None)
    _program(no_programs, "mini")
    assert agent_problems(settings) == [
        "MULL_AGENT_PRESETS lists 'aider', whose program `aider` is not installed (not found on PATH): install it "
        "(`pipx install aider-chat`), or take 'aider' out of MULL_AGENT_PRESETS",
        "MULL_AGENT_PRESETS lists 'codex', whose program `codex` is not installed (not found on PATH): install it "
        "(`npm install -g @openai/codex`), or take 'codex' out of MULL_AGENT_PRESETS"]
    unknown = load_settings({"MULL_AGENT_PRESETS": "aider,evil"}, env_file=None)
    assert "MULL_AGENT_PRESETS names an unknown preset 'evil'" in agent_problems(unknown)[0]


def test_custom_commands_are_checked_by_their_first_word_without_echoing_them(no_programs: Path) -> None:
    settings = load_settings({"MULL_AGENT_COMMAND": "my-agent --token s3cret {prompt_file}",
                              "MULL_CRITIQUE_COMMAND": "my-critic {prompt_file}", "MULL_SANDBOX": "false"},
                             env_file=None)
    problems = agent_problems(settings)
    assert [problem.split(" is not installed")[0] for problem in problems] == [
        "MULL_AGENT_COMMAND: its program `my-agent`", "MULL_CRITIQUE_COMMAND: its program `my-critic`"]
    assert not any("s3cret" in problem for problem in problems)
    _program(no_programs, "my-agent")
    _program(no_programs, "my-critic")
    assert agent_problems(settings) == []
    assert agent_problems(settings, command=False, critique=False) == []
    broken = load_settings({"MULL_AGENT_COMMAND": "my-agent --no-prompt"}, env_file=None)
    assert agent_problems(broken) == ["MULL_AGENT_COMMAND must contain {prompt_file}: the path of the file holding "
                                      "the task prompt, e.g. 'aider --yes-always --message-file {prompt_file}'"]


def test_a_program_the_sandbox_cannot_see_names_what_to_add_to_its_paths(tmp_path: Path, no_programs: Path) -> None:
    prefix = tmp_path / "venvs" / "aider"
    python = _program(prefix / "bin", "python", "#!/bin/sh")
    real = _program(prefix / "bin", "aider", f"#!{python}")
    (no_programs / "aider").symlink_to(real)  # as pipx installs: a link on PATH into the tool's own prefix
    unseen = load_settings({"MULL_AGENT_COMMAND": "aider"}, env_file=None)
    assert agent_problems(unseen) == [
        f"MULL_AGENT_COMMAND=aider: the program `aider` is installed at {no_programs / 'aider'}, which agent "
        f"sandboxes do not see: add {no_programs}:{prefix} to MULL_SANDBOX_RO_PATHS, or install it under /usr/local"]
    seen = load_settings({"MULL_AGENT_COMMAND": "aider", "MULL_SANDBOX_RO_PATHS": f"{no_programs}:{prefix}"},
                         env_file=None)
    assert agent_problems(seen) == []
    assert agent_problems(load_settings({"MULL_AGENT_COMMAND": "aider", "MULL_SANDBOX": "false"},
                                        env_file=None)) == []  # unconfined, the host's PATH is what counts


def test_everything_wrong_is_in_one_message(no_programs: Path) -> None:
    settings, invalid = read_settings({"MULL_PORT": "s3cret-port", "MULL_PRIVATE_KEY": "s3cret-not-a-key",
                                       "MULL_LLM_BASE_URL": "localhost:11434/v1", "MULL_AGENT_COMMAND": "claude",
                                       "MULL_SANDBOX": "false"}, env_file=None)
    with pytest.raises(ConfigError) as caught:
        startup_check.check(settings, startup_check.WORKER, invalid)
    named = [problem.split()[0].rstrip(":") for problem in caught.value.problems]
    assert named == ["MULL_PORT", "MULL_LLM_BASE_URL", "MULL_APP_ID", "MULL_PRIVATE_KEY", "MULL_LLM_MODEL",
                     "MULL_AGENT_COMMAND=claude"]  # MULL_LLM_BASE_URL once: invalid, not also "not set"
    assert str(caught.value).startswith("6 problems to fix before Mull can start:\n  - MULL_PORT ")
    assert "s3cret" not in str(caught.value)


def test_a_complete_configuration_passes(no_programs: Path, app_keypair: tuple[str, str]) -> None:
    _program(no_programs, "claude")
    settings = load_settings({"MULL_APP_ID": "1", "MULL_PRIVATE_KEY": app_keypair[0], "MULL_SANDBOX": "false",
                              "MULL_LLM_BASE_URL": "http://127.0.0.1:1/v1", "MULL_LLM_MODEL": "m",
                              "MULL_AGENT_COMMAND": "claude", "MULL_WEBHOOK_SECRET": "hook"}, env_file=None)
    startup_check.check(settings, startup_check.SERVE)


def _probe(settings_env: dict[str, str]) -> tuple[list[str], str | None]:
    return asyncio.run(worker_start_problems(load_settings(settings_env, env_file=None)))


def test_the_worker_probe_refuses_what_only_a_setting_fixes_in_one_line_each() -> None:
    with ScriptedModel(api_key="sk-right-0123456789") as model:
        key = {"MULL_LLM_API_KEY": "sk-right-0123456789"}
        assert _probe({"MULL_LLM_BASE_URL": model.url, "MULL_LLM_MODEL": "scripted", **key}) == ([], None)
        no_v1, _ = _probe({"MULL_LLM_BASE_URL": model.base_url, "MULL_LLM_MODEL": "scripted", **key})
        wrong_key, _ = _probe({"MULL_LLM_BASE_URL": model.url, "MULL_LLM_MODEL": "scripted",
                               "MULL_LLM_API_KEY": "sk-wrong-0123456789"})
        no_model, _ = _probe({"MULL_LLM_BASE_URL": model.url, "MULL_LLM_MODEL": "scripted",
                              "MULL_CRITIQUE_MODEL": "llama3", **key})
    assert no_v1 == [f"the model server at {model.base_url} answered HTTP 404 for {model.base_url}/models: did you "
                     f"mean {model.base_url}/v1? OpenAI-compatible servers answer under /v1; set "
                     f"MULL_LLM_BASE_URL={model.base_url}/v1"]
    assert wrong_key == [f"the model server at {model.url} refused the API key (HTTP 401): set MULL_LLM_API_KEY to "
                         "a valid key for it"]
    assert no_model == [f"the model server at {model.url} has no model 'llama3' (it has scripted): set "
                        "MULL_LLM_MODEL to one it has"]


def test_the_worker_probe_only_warns_when_the_server_does_not_answer(app_keypair) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    unreachable = (f"cannot connect to the model server at {url} (connection refused): is it running? For Ollama: "
                   "`ollama serve`; otherwise start your model server, or set MULL_LLM_BASE_URL to where it listens")
    assert _probe({"MULL_LLM_BASE_URL": url, "MULL_LLM_MODEL": "m"}) == ([], unreachable)
    settings = load_settings({"MULL_LLM_BASE_URL": url, "MULL_LLM_MODEL": "m", "MULL_APP_ID": "1",
                              "MULL_PRIVATE_KEY": app_keypair[0], "MULL_SANDBOX": "false"}, env_file=None)
    log = RecordingLog()
    startup_check.check_before_start(settings, replace(startup_check.WORKER, probe=True), [], log)
    assert log.warnings() == [("model server not answering at start-up; runs fail until it does",
                               {"error": unreachable})]
    log = RecordingLog()
    no_app = settings.model_copy(update={"app_id": None})
    with pytest.raises(ConfigError, match="MULL_APP_ID"):  # not starting: the warning would be noise
        startup_check.check_before_start(no_app, replace(startup_check.WORKER, probe=True), [], log)
    assert log.lines == []


def _mull(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    import subprocess

    done = subprocess.run([MULL, *args], env={"PATH": os.environ["PATH"], "HOME": "/tmp", **env}, cwd=cwd,
                          capture_output=True, text=True, timeout=60)
    return done.returncode, done.stderr


def test_mull_worker_lists_every_problem_before_starting_anything(tmp_path: Path) -> None:
    env = {"MULL_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "MULL_PORT": "http", "MULL_APP_ID": "7",
           "MULL_PRIVATE_KEY_PATH": str(tmp_path / "missing.pem"), "MULL_AGENT_COMMAND": "codex",
           "MULL_SANDBOX": "false", "MULL_DATA_DIR": str(tmp_path / "data")}
    code, stderr = _mull(["worker"], env, tmp_path)
    assert code == 2 and "Traceback" not in stderr
    lines = stderr.splitlines()
    assert lines[0] == "mull: 5 problems to fix before Mull can start:"
    assert [line.split()[1].rstrip(":") for line in lines[1:]] == [
        "MULL_PORT", f"MULL_PRIVATE_KEY_PATH={tmp_path / 'missing.pem'}", "MULL_LLM_BASE_URL", "MULL_LLM_MODEL",
        "MULL_AGENT_COMMAND=codex"]
    assert not (tmp_path / "data").exists()  # nothing started: no Redis, no run directories


def test_mull_worker_refuses_a_model_url_without_v1_in_one_line(tmp_path: Path, app_keypair, redis_url) -> None:
    with ScriptedModel() as model:
        env = {"MULL_REDIS_URL": redis_url, "MULL_APP_ID": "7", "MULL_PRIVATE_KEY": app_keypair[0],
               "MULL_SANDBOX": "false", "MULL_LLM_BASE_URL": model.base_url, "MULL_LLM_MODEL": "scripted",
               "MULL_DATA_DIR": str(tmp_path / "data")}
        code, stderr = _mull(["worker", "--burst"], env, tmp_path)
        assert (code, stderr) == (2, f"mull: the model server at {model.base_url} answered HTTP 404 for "
                                     f"{model.base_url}/models: did you mean {model.base_url}/v1? OpenAI-compatible "
                                     f"servers answer under /v1; set MULL_LLM_BASE_URL={model.base_url}/v1\n")
        code, stderr = _mull(["worker", "--burst"], {**env, "MULL_LLM_BASE_URL": model.url}, tmp_path)
    assert code == 0, stderr
