"""The `mull` command as a user runs it: serve on the embedded Redis, replay, status, help, log output, and bad
input (`mull try`: tests/test_try.py; starting and stopping: tests/test_serve_lifecycle.py)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import redis
from doubles.fixtures import APP_ID, REPO
from doubles.mull_process import MULL, MullProcess, free_port
from doubles.terminal import run_in_terminal

BASE_ENV = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}


def mull(*args: str, env: dict[str, str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MULL, *args], env={**BASE_ENV, **env}, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def wait_ready(port: int, process: MullProcess, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert process.alive(), process.log()
        time.sleep(0.1)
    raise AssertionError("mull serve did not become ready:\n" + process.log())


@pytest.mark.e2e
def test_serve_runs_everything_in_one_process_on_the_embedded_redis(
        tmp_path: Path, github_double, scripted_model, app_keypair) -> None:
    github_double.set_permission(REPO, "maria", "admin")
    scripted_model.script("SCRIPT-serve", [
        {"tool_calls": [{"name": "write_file", "arguments": {"path": "HELLO.md", "content": "hi\n"}}]},
        {"tool_calls": [{"name": "finish", "arguments": {"summary": "Said hello.", "not_done": []}}]}])
    port = free_port()
    env = {**BASE_ENV, "MULL_APP_ID": str(APP_ID), "MULL_PRIVATE_KEY": app_keypair[0],
           "MULL_WEBHOOK_SECRET": github_double.webhook_secret, "MULL_GITHUB_URL": github_double.url,
           "MULL_DATA_DIR": str(tmp_path / "data"), "MULL_PORT": str(port),
           "MULL_LLM_BASE_URL": scripted_model.url, "MULL_LLM_MODEL": "scripted"}
    serve = MullProcess(["serve"], env, tmp_path / "serve.log", tmp_path).start()
    try:
        wait_ready(port, serve)
        socket = tmp_path / "data" / "redis" / "redis.sock"
        assert socket.exists()  # no MULL_REDIS_URL: the bundled redis-server runs under MULL_DATA_DIR
        github_double.set_webhook(f"http://127.0.0.1:{port}/webhooks/github")
        issue = github_double.create_issue(REPO, "Say hello", "SCRIPT-serve", author="maria")
        assert github_double.label_issue(REPO, issue.number, "mull", "maria") == 202
        deadline = time.monotonic() + 60
        while not github_double.pulls(REPO):
            assert time.monotonic() < deadline, serve.log()
            time.sleep(0.2)

        # replay signs a saved payload with the configured secret and posts it to the running server
        payload = tmp_path / "labeled.json"
        payload.write_text(json.dumps({"action": "labeled", "label": {"name": "mull"}, "issue": {"number": 99},
                                       "sender": {"login": "maria"}, "repository": {"id": 1, "full_name": "a/b"}}))
        replay = mull("replay", str(payload), "--event", "issues", env=env, cwd=tmp_path)
        assert replay.returncode == 0 and replay.stdout.startswith("202"), replay.stderr

        status = mull("status", "--json", env=env, cwd=tmp_path)
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        assert {"queued", "running", "deferred", "workers", "awaiting_review", "recent_failures",
                "installations", "backlogs"} <= set(report)
        assert sum(report["backlogs"][REPO]["states"].values()) == 1  # the labeled issue, wherever it stands
        text = mull("status", env=env, cwd=tmp_path)
        assert f"backlog {REPO}:" in text.stdout, text.stdout
        assert any(w["alive"] for w in report["workers"])
    finally:
        serve.stop()
    assert serve.process is not None and serve.process.returncode == 0, serve.log()
    with pytest.raises(redis.ConnectionError):  # the embedded server stopped with mull
        redis.Redis(unix_socket_path=str(tmp_path / "data" / "redis" / "redis.sock")).ping()
    for secret in (github_double.webhook_secret, app_keypair[0].splitlines()[1]):
        assert secret not in serve.log()


MODEL = {"MULL_LLM_BASE_URL": "http://127.0.0.1:1/v1", "MULL_LLM_MODEL": "m"}
WORKER = {"MULL_REDIS_URL": "redis://127.0.0.1:6379/9", "MULL_APP_ID": "1", "MULL_PRIVATE_KEY": "PEM", **MODEL,
          "MULL_SANDBOX": "false"}


@pytest.mark.parametrize(("args", "env", "message"), [
    (["serve"], {**WORKER, "MULL_REDIS_URL": ""}, "MULL_WEBHOOK_SECRET"),
    (["web"], {"MULL_PORT": "http"}, "MULL_PORT"),
    (["worker"], {**WORKER, "MULL_APP_ID": ""}, "MULL_APP_ID"),
    (["worker"], {**WORKER, "MULL_LLM_BASE_URL": ""}, "MULL_LLM_BASE_URL"),
    (["worker"], {**WORKER, "MULL_PRIVATE_KEY": "-----BEGIN PUBLIC KEY-----"}, "holds a public key"),
    (["worker"], {**WORKER, "MULL_SANDBOX": "true", "PATH": "/nonexistent"}, "apt-get install bubblewrap"),
    (["worker"], {**WORKER, "MULL_AGENT_COMMAND": "claude"}, "`npm install -g @anthropic-ai/claude-code`"),
    (["try", "--repo", ".", "--issue-file", "missing.md"], {**MODEL, "MULL_SANDBOX": "false"}, "missing.md"),
    (["replay", "missing.json", "--event", "issues"], {"MULL_WEBHOOK_SECRET": "s"}, "cannot read missing.json"),
    (["status"], {"MULL_LOG_FORMAT": "pretty"}, "MULL_LOG_FORMAT: must be auto"),
    (["serve", "--port", "http"], {}, "argument --port: 'http' is not a port number"),
    (["frobnicate"], {}, "invalid choice: 'frobnicate'"),
])
def test_bad_configuration_and_arguments_get_one_clear_line(tmp_path: Path, args, env, message,
                                                            app_keypair) -> None:
    env = {name: app_keypair[0] if value == "PEM" else value for name, value in env.items() if value}  # a real key
    if env.get("PATH") == "/nonexistent":
        env = {**env, "PATH": "/nonexistent"}
        result = subprocess.run([MULL, *args], env={"HOME": "/tmp", **env}, cwd=tmp_path, capture_output=True,
                                text=True, timeout=60)
    else:
        result = mull(*args, env={"MULL_DATA_DIR": str(tmp_path / "d"), **env}, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    argparse_usage = [line for line in result.stderr.splitlines() if line.startswith("usage:")]
    assert len(result.stderr.strip().splitlines()) - len(argparse_usage) == 1, result.stderr


def test_replay_to_a_server_that_is_not_running_says_so(tmp_path: Path) -> None:
    payload = tmp_path / "p.json"
    payload.write_text("{}")
    result = mull("replay", str(payload), "--event", "issues", "--url", f"http://127.0.0.1:{free_port()}",
                  env={"MULL_WEBHOOK_SECRET": "s"}, cwd=tmp_path)
    assert result.returncode == 2 and "is `mull serve` (or `mull web`) running?" in result.stderr


def test_status_where_no_mull_runs_starts_nothing_and_says_so(tmp_path: Path, redis_url: str) -> None:
    result = mull("status", env={}, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("mull: nothing is running here") and f"{tmp_path}/.mull/redis" in line, line
    assert "mull serve" in line and "MULL_REDIS_URL" in line and not result.stdout
    assert not (tmp_path / ".mull").exists()  # no data directory, so no embedded Redis either
    # the good case beside it: pointed at a Redis, the same command reports
    report = mull("status", "--json", env={"MULL_REDIS_URL": redis_url}, cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["workers"] == []
    assert not (tmp_path / ".mull").exists()


UNREACHABLE_COMMANDS = {
    "status": (["status"], {}),
    "retry-deliveries": (["retry-deliveries", "--all"], {}),
    "web": (["web"], {"MULL_WEBHOOK_SECRET": "s" * 24}),
    "worker": (["worker"], {"MULL_APP_ID": "1", "MULL_PRIVATE_KEY": "PEM", "MULL_LLM_BASE_URL": "http://127.0.0.1:1/v1",
                            "MULL_LLM_MODEL": "m", "MULL_SANDBOX": "false"}),
    "serve": (["serve"], {"MULL_APP_ID": "1", "MULL_PRIVATE_KEY": "PEM", "MULL_WEBHOOK_SECRET": "s" * 24,
                          "MULL_LLM_BASE_URL": "http://127.0.0.1:1/v1", "MULL_LLM_MODEL": "m",
                          "MULL_SANDBOX": "false"}),
}


@pytest.mark.parametrize("command", list(UNREACHABLE_COMMANDS))
def test_an_unreachable_redis_is_one_line_naming_it_for_every_command(tmp_path: Path, command: str,
                                                                     app_keypair: tuple[str, str]) -> None:
    args, env = UNREACHABLE_COMMANDS[command]
    env = {name: app_keypair[0] if value == "PEM" else value for name, value in env.items()}  # a key that parses
    port = free_port()  # nothing listens there
    result = mull(*args, env={**env, "MULL_REDIS_URL": f"redis://:pa55-not-shown@127.0.0.1:{port}/0",
                              "MULL_PORT": str(free_port()), "MULL_DATA_DIR": str(tmp_path / "d")}, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    # The one line about Redis; the worker's model probe may warn before it (the model is unreachable too).
    lines = [x for x in result.stderr.strip().splitlines() if "model server not answering" not in x]
    assert "Traceback" not in result.stderr and len(lines) == 1, result.stderr
    [line] = lines
    assert line == (f"mull: cannot reach Redis at redis://127.0.0.1:{port}/0 (connection refused): start "
                    "redis-server there, or unset MULL_REDIS_URL to use the embedded Redis"), line
    assert "pa55-not-shown" not in result.stdout + result.stderr


def test_version_and_each_commands_help(tmp_path: Path) -> None:
    from importlib.metadata import version

    shown = mull("--version", env={}, cwd=tmp_path)
    assert shown.returncode == 0 and shown.stdout.strip() == f"mull {version('mull')}"
    helps = {name: mull(name, "--help", env={}, cwd=tmp_path) for name in
             ("serve", "web", "worker", "replay", "status", "retry-deliveries", "try")}
    for name, text in helps.items():
        assert text.returncode == 0, text.stderr
        assert "main settings:" in text.stdout and ".env" in text.stdout, (name, text.stdout)
    assert all(v in helps["serve"].stdout for v in ("MULL_PORT", "MULL_REDIS_URL", "MULL_APP_ID", "MULL_LOG_FORMAT",
                                                    "--port", "Ctrl-C"))
    assert "MULL_WORKER_JOBS" in helps["worker"].stdout and "--burst" in helps["worker"].stdout
    assert "says so when nothing runs here" in " ".join(helps["status"].stdout.split())
    overview = mull("--help", env={}, cwd=tmp_path)
    assert overview.returncode == 0 and "--version" in overview.stdout and "mull serve" in overview.stdout
    bare = mull(env={}, cwd=tmp_path)  # the bad case: no command at all
    assert bare.returncode == 2 and "COMMAND" in bare.stderr and "Traceback" not in bare.stderr


def burst_env(tmp_path: Path, redis_url: str, github_url: str, model_url: str, key: str) -> dict[str, str]:
    return {**BASE_ENV, "MULL_REDIS_URL": redis_url, "MULL_APP_ID": str(APP_ID), "MULL_PRIVATE_KEY": key,
            "MULL_GITHUB_URL": github_url, "MULL_LLM_BASE_URL": model_url, "MULL_LLM_MODEL": "scripted",
            "MULL_SANDBOX": "false", "MULL_DATA_DIR": str(tmp_path / "data")}


def test_logs_are_readable_lines_on_a_terminal_and_json_elsewhere(
        tmp_path: Path, redis_url: str, github_double, scripted_model, app_keypair) -> None:
    env = burst_env(tmp_path, redis_url, github_double.url, scripted_model.url, app_keypair[0])
    screen = run_in_terminal([MULL, "worker", "--burst"], env, tmp_path, timeout=60)
    assert screen.returncode == 0, screen.text
    started = [line for line in screen.lines if "worker started" in line]
    assert started and not started[0].lstrip().startswith("{"), screen.text
    assert "[info" in started[0] and "worker_id=" in started[0]
    assert "\x1b[" in screen.raw  # in colour on a terminal

    forced = run_in_terminal([MULL, "worker", "--burst"], {**env, "MULL_LOG_FORMAT": "json"}, tmp_path, timeout=60)
    assert forced.returncode == 0, forced.text
    assert json.loads(next(line for line in forced.lines if "worker started" in line))["level"] == "info"

    piped = subprocess.run([MULL, "worker", "--burst"], env=env, cwd=tmp_path, capture_output=True, text=True,
                           timeout=60)
    assert piped.returncode == 0, piped.stderr
    assert all(json.loads(line) for line in piped.stderr.splitlines())
    console = subprocess.run([MULL, "worker", "--burst"], env={**env, "MULL_LOG_FORMAT": "console"}, cwd=tmp_path,
                             capture_output=True, text=True, timeout=60)
    assert console.returncode == 0, console.stderr
    assert "worker started" in console.stderr and not console.stderr.lstrip().startswith("{")
    assert "\x1b[" not in console.stderr  # readable, but no colour codes in a file
