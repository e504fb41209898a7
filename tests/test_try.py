"""`mull try` as a user runs it: real `mull` processes, real git, the scripted model server.

On a terminal it shows live progress and an end summary; piped, only the patch goes to stdout and one line
to stderr. The patch applies with `git apply` (no bytecode in it), uncommitted work is named, `--patch`,
`--keep` and `--critique` do what they say, and a model that cannot be used costs one line.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from doubles.model_server import ScriptedModel
from doubles.mull_process import MULL, free_port
from doubles.terminal import run_in_terminal

BASE_ENV = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
KEY = "sk-test-4f9a1c0e77d2b5"  # must never appear in anything mull prints
ESCAPE = re.compile(r"\x1b\[")


def git(repo: Path, *args: str) -> str:
    env = {**BASE_ENV, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout


def project(tmp_path: Path, files: dict[str, str] | None = None) -> Path:
    """A checkout with one commit and no .gitignore: nothing of its own keeps bytecode out."""
    repo = tmp_path / "project"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for path, text in (files or {"app.py": "print('helo')\n", "AGENTS.md": "Keep changes small.\n"}).items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    return repo


def issue(tmp_path: Path, key: str) -> Path:
    path = tmp_path / "issue.md"
    path.write_text(f"# Fix the typo\n\nIt says helo. {key}\n")
    return path


def typo_fix(key: str, summary: str = "Fixed the typo.") -> list[dict]:
    """Read, edit, run the code (which writes __pycache__), finish."""
    return [
        {"tool_calls": [{"name": "read_file", "arguments": {"path": "app.py"}}]},
        {"tool_calls": [{"name": "edit_file", "arguments": {"path": "app.py", "old": "helo", "new": "hello"}}]},
        {"tool_calls": [{"name": "run_command", "arguments": {"command": "python3 -c 'import app'"}}]},
        {"tool_calls": [{"name": "finish", "arguments": {"summary": f"{summary}\n\nChecked it runs.",
                                                         "not_done": []}}]}]


def model_env(model: ScriptedModel, tmp_path: Path, **extra: str) -> dict[str, str]:
    # MULL_SANDBOX=false: the agent's command runs unconfined, so the test needs no bubblewrap.
    return {**BASE_ENV, "MULL_LLM_BASE_URL": model.url, "MULL_LLM_MODEL": "scripted", "MULL_LLM_API_KEY": KEY,
            "MULL_DATA_DIR": str(tmp_path / "data"), "MULL_SANDBOX": "false", **extra}


def mull_try(repo: Path, issue_file: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MULL, "try", "--repo", str(repo), "--issue-file", str(issue_file), *args], env=env,
                          cwd=repo.parent, capture_output=True, text=True, timeout=120)


def applies(repo: Path, patch: str) -> None:
    """`git apply` takes the patch on the user's checkout, as the user would run it."""
    done = subprocess.run(["git", "apply", "-"], cwd=repo, input=patch, capture_output=True, text=True,
                          env={**BASE_ENV, "GIT_CONFIG_GLOBAL": "/dev/null"})
    assert done.returncode == 0, done.stderr


def test_piped_stdout_is_the_patch_alone_and_it_applies(tmp_path: Path, scripted_model) -> None:
    repo = project(tmp_path)
    scripted_model.script("SCRIPT-pipe", typo_fix("SCRIPT-pipe"))
    result = mull_try(repo, issue(tmp_path, "SCRIPT-pipe"), model_env(scripted_model, tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("diff --git a/app.py b/app.py\n") and "+print('hello')" in result.stdout
    assert "__pycache__" not in result.stdout and ".pyc" not in result.stdout  # the agent's run wrote them
    assert not ESCAPE.search(result.stdout + result.stderr)
    line, = result.stderr.splitlines()  # one line of summary, nothing else: no banner, no log lines
    assert line.startswith("mull try: 1 file changed (+1 -1); 4 model requests, ")
    assert "the agent said: Fixed the typo." in line and KEY not in line
    assert (repo / "app.py").read_text() == "print('helo')\n"  # the user's checkout is untouched
    applies(repo, result.stdout)
    assert (repo / "app.py").read_text() == "print('hello')\n"
    prompt = json.dumps(scripted_model.requests_for("SCRIPT-pipe")[0]["body"]["messages"])
    assert "Keep changes small." in prompt and "untrusted" in prompt.lower()


def test_a_terminal_gets_live_progress_and_an_end_summary(tmp_path: Path, scripted_model) -> None:
    repo = project(tmp_path)
    scripted_model.script("SCRIPT-tty", typo_fix("SCRIPT-tty"))
    screen = run_in_terminal([MULL, "try", "--repo", str(repo), "--issue-file", str(issue(tmp_path, "SCRIPT-tty"))],
                             model_env(scripted_model, tmp_path), cwd=tmp_path)
    assert screen.returncode == 0, screen.text
    lines = screen.lines
    assert ESCAPE.search(screen.raw)  # rich drew it: colours and a redrawn status line
    assert f"• checking scripted at {scripted_model.url}" in lines
    assert "• starting from HEAD" in screen.text and "(main)" in screen.text
    assert "  → read_file app.py" in lines and "  → edit_file app.py" in lines and "  ✎ app.py" in lines
    assert "  $ python3 -c 'import app' → exit 0 (" in screen.text
    assert sum(line.startswith("  · model: ") and "tokens" in line for line in lines) == 4
    assert any("4 requests · " in line and "tokens" in line for line in lines)  # the live status line
    assert "+print('hello')" in lines  # the patch is shown, then the summary
    for said in ("The agent said:", "Fixed the typo.", "1 file changed (+1 -1):", "  M app.py +1 -1"):
        assert said in lines
    assert re.search(r"Used: 4 model requests, [\d,]+ tokens \([\d,]+ in, [\d,]+ out\), [\d.]+ s", screen.text)
    saved = re.search(r"Patch: (\S+\.patch); apply it to your checkout with git apply \1", screen.text)
    assert saved, screen.text
    patch = Path(saved.group(1))
    try:
        assert "__pycache__" not in patch.read_text()
        applies(repo, patch.read_text())
    finally:
        patch.unlink()
    assert "Logfire" not in screen.text and "pydantic-ai v" not in screen.text  # no banner on a terminal either
    assert KEY not in screen.raw and "Traceback" not in screen.text


def test_uncommitted_changes_are_named_and_left_out(tmp_path: Path, scripted_model) -> None:
    repo = project(tmp_path)
    (repo / "app.py").write_text("print('helo')  # work in progress\n")
    (repo / "notes.txt").write_text("not committed\n")
    scripted_model.script("SCRIPT-dirty", typo_fix("SCRIPT-dirty"))
    result = mull_try(repo, issue(tmp_path, "SCRIPT-dirty"), model_env(scripted_model, tmp_path))
    assert result.returncode == 0, result.stderr
    head = git(repo, "rev-parse", "--short=7", "HEAD").strip()
    notice, summary = result.stderr.splitlines()
    assert notice == (f"mull try: starting from HEAD {head} (main); 2 uncommitted changes (app.py, notes.txt) are not "
                      "included: commit them or pass --include-uncommitted")
    assert summary.startswith("mull try: 1 file changed")
    assert "-print('helo')\n+print('hello')\n" in result.stdout
    assert "work in progress" not in result.stdout and "notes.txt" not in result.stdout
    assert (repo / "app.py").read_text() == "print('helo')  # work in progress\n"


def test_include_uncommitted_starts_from_the_checkout_as_it_is(tmp_path: Path, scripted_model) -> None:
    repo = project(tmp_path, {"app.py": "print('helo')\n", "old.txt": "old\n", "gone.txt": "bye\n"})
    (repo / ".gitignore").write_text(".env\n")
    (repo / ".env").write_text(f"TOKEN={KEY}\n")  # ignored: never part of the run
    (repo / "app.py").write_text("print('helo')  # work in progress\n")
    (repo / "notes.txt").write_text("not committed\n")
    (repo / "gone.txt").unlink()
    git(repo, "mv", "old.txt", "new.txt")
    scripted_model.script("SCRIPT-incl", [
        {"tool_calls": [{"name": "list_files", "arguments": {}}]},
        *typo_fix("SCRIPT-incl")[1:]])
    result = mull_try(repo, issue(tmp_path, "SCRIPT-incl"), model_env(scripted_model, tmp_path),
                      "--include-uncommitted")
    assert result.returncode == 0, result.stderr
    line, = result.stderr.splitlines()
    assert "work in progress" in result.stdout and "+print('hello')  # work in progress" in result.stdout
    assert "notes.txt" not in result.stdout and "gone.txt" not in result.stdout  # part of the start, not the patch
    listing = scripted_model.requests_for("SCRIPT-incl")[1]["body"]["messages"][-1]["content"]
    assert "notes.txt" in listing and "new.txt" in listing and "gitignore" in listing
    assert "old.txt" not in listing and "gone.txt" not in listing and ".env" not in listing
    before = git(repo, "status", "--porcelain")
    applies(repo, result.stdout)  # onto the dirty checkout, as it is
    assert (repo / "app.py").read_text() == "print('hello')  # work in progress\n"
    assert git(repo, "status", "--porcelain") == before  # the same paths changed, no more; the index untouched


def test_patch_writes_the_file_keep_keeps_the_tree(tmp_path: Path, scripted_model) -> None:
    repo = project(tmp_path)
    scripted_model.script("SCRIPT-files", typo_fix("SCRIPT-files"))
    target = tmp_path / "fix.patch"
    result = mull_try(repo, issue(tmp_path, "SCRIPT-files"), model_env(scripted_model, tmp_path),
                      "--patch", str(target), "--keep")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    line, = result.stderr.splitlines()
    assert f"; patch written to {target};" in line
    kept = Path(re.search(r"tree kept at (\S+);", line).group(1))
    try:
        assert (kept / "app.py").read_text() == "print('hello')\n"
        assert list((kept / "__pycache__").glob("app.*.pyc"))  # the tree as the agent left it
        assert kept.name == "project" and not kept.is_relative_to(tmp_path)
    finally:
        shutil.rmtree(kept.parent)
    patch = target.read_text()
    assert patch.startswith("diff --git") and "__pycache__" not in patch
    applies(repo, patch)


def test_patch_to_a_missing_directory_is_refused_before_the_run(tmp_path: Path, scripted_model) -> None:
    repo = project(tmp_path)
    result = mull_try(repo, issue(tmp_path, "SCRIPT-none"), model_env(scripted_model, tmp_path),
                      "--patch", str(tmp_path / "no" / "fix.patch"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"mull: --patch {tmp_path / 'no' / 'fix.patch'}: the directory {tmp_path / 'no'} " \
                                    "does not exist"
    assert scripted_model.requests == []


def test_critique_previews_the_verdict_and_comments(tmp_path: Path, scripted_model) -> None:
    repo = project(tmp_path)
    scripted_model.script("SCRIPT-crit", typo_fix("SCRIPT-crit", summary="Fixed the typo. REVIEW-crit"))
    scripted_model.script("REVIEW-crit", [{"tool_calls": [{"name": "submit_critique", "arguments": {
        "summary": "Fixes the greeting.", "effort": 1, "risks": ["Output changes."], "security": [],
        "findings": [{"path": "app.py", "start_line": 1, "end_line": 1, "severity": "low", "title": "No test",
                      "why": "Nothing checks the output.", "suggestion": "Add a test of the greeting."}],
        "tests": "none", "tests_note": "", "verdict": "fix"}}]}])
    result = mull_try(repo, issue(tmp_path, "SCRIPT-crit"), model_env(scripted_model, tmp_path), "--critique")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("diff --git")
    assert result.stderr.splitlines() == [
        "critique: fix · review effort 1/5 · tests: none",
        "  Fixes the greeting.",
        "  1. app.py:1 (low) No test",
        "     why: Nothing checks the output.",
        "     fix: Add a test of the greeting.",
        "  risk: Output changes.",
        result.stderr.splitlines()[-1]]
    assert "; critique: fix (review effort 1/5, 1 findings);" in result.stderr.splitlines()[-1]
    review = scripted_model.requests_for("REVIEW-crit")[0]["body"]
    prompt = json.dumps(review["messages"])
    assert "+print('hello')" in prompt and "Fix the typo" in prompt  # the diff and the title, as on a PR


def test_a_refused_connection_is_one_line_with_the_fix(tmp_path: Path) -> None:
    repo = project(tmp_path)
    url = f"http://127.0.0.1:{free_port()}/v1"
    env = {**BASE_ENV, "MULL_LLM_BASE_URL": url, "MULL_LLM_MODEL": "qwen2.5-coder", "MULL_LLM_API_KEY": KEY,
           "MULL_DATA_DIR": str(tmp_path / "data"), "MULL_SANDBOX": "false"}
    result = mull_try(repo, issue(tmp_path, "SCRIPT-none"), env)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (f"mull: cannot connect to the model server at {url} (connection refused): is it running? "
                             "For Ollama: `ollama serve`; otherwise start your model server, or set MULL_LLM_BASE_URL "
                             "to where it listens\n")


def test_a_refused_connection_on_a_terminal_ends_the_same_way(tmp_path: Path) -> None:
    repo = project(tmp_path)
    url = f"http://127.0.0.1:{free_port()}/v1"
    env = {**BASE_ENV, "MULL_LLM_BASE_URL": url, "MULL_LLM_MODEL": "m", "MULL_DATA_DIR": str(tmp_path / "data"),
           "MULL_SANDBOX": "false"}
    screen = run_in_terminal([MULL, "try", "--repo", str(repo), "--issue-file", str(issue(tmp_path, "x"))], env,
                             cwd=tmp_path)
    assert screen.returncode == 2
    errors = [line for line in screen.lines if line.startswith("mull:")]
    assert errors == [f"mull: cannot connect to the model server at {url} (connection refused): is it running? "
                      "For Ollama: `ollama serve`; otherwise start your model server, or set MULL_LLM_BASE_URL to "
                      "where it listens"]
    assert "Traceback" not in screen.text and "retry" not in screen.text.lower()


def test_a_wrong_key_is_one_line_and_never_shown(tmp_path: Path) -> None:
    repo = project(tmp_path)
    with ScriptedModel(api_key="sk-the-right-one-123456") as model:
        result = mull_try(repo, issue(tmp_path, "SCRIPT-key"), model_env(model, tmp_path))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (f"mull: the model server at {model.url} refused the API key (HTTP 401): set "
                             "MULL_LLM_API_KEY to a valid key for it\n")
    assert model.requests == []  # refused at the model list, before any run


def test_the_right_key_reaches_the_model(tmp_path: Path) -> None:
    repo = project(tmp_path)
    with ScriptedModel(api_key=KEY) as model:
        model.script("SCRIPT-rightkey", typo_fix("SCRIPT-rightkey"))
        result = mull_try(repo, issue(tmp_path, "SCRIPT-rightkey"), model_env(model, tmp_path))
    assert result.returncode == 0, result.stderr
    assert "+print('hello')" in result.stdout


TOOLS_FIX = "Mull's agent needs a model with tool calling, e.g. qwen2.5-coder or llama3.1; set MULL_LLM_MODEL to one"


@pytest.mark.parametrize(("turns", "expected"), [
    ([{"status": 401, "body": {"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error"}}}],
     "the model server at {url} refused the API key (HTTP 401): set MULL_LLM_API_KEY to a valid key for it"),
    ([{"status": 400, "body": {"error": {"message": "registry.ollama.ai/library/gemma:2b does not support tools",
                                         "type": "api_error"}}}],
     "the model 'scripted' at {url} cannot call tools (registry.ollama.ai/library/gemma:2b does not support tools): "
     + TOOLS_FIX),
    ([{"content": "I would change helo to hello."}],
     "the model 'scripted' at {url} cannot call tools (it answered 4 time(s) in text, never with a tool call): "
     + TOOLS_FIX),
    ([{"status": 404, "body": {"error": {"message": "model \"scripted\" not found, try pulling it first",
                                         "type": "api_error"}}}],
     "the model server at {url} has no model 'scripted' (model \"scripted\" not found, try pulling it first): set "
     "MULL_LLM_MODEL to one it has"),
], ids=["401", "no-tools-400", "no-tool-calls", "no-such-model"])
def test_a_model_that_fails_its_first_request_is_one_line(tmp_path: Path, scripted_model, turns, expected) -> None:
    repo = project(tmp_path)
    scripted_model.script("SCRIPT-bad", turns)
    result = mull_try(repo, issue(tmp_path, "SCRIPT-bad"), model_env(scripted_model, tmp_path))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == "mull: " + expected.format(url=scripted_model.url) + "\n"


@pytest.mark.parametrize(("url_of", "model", "expected"), [
    (lambda model: model.base_url, "scripted",
     "the model server at {base} answered HTTP 404 for {base}/models: did you mean {base}/v1? OpenAI-compatible "
     "servers answer under /v1; set MULL_LLM_BASE_URL={base}/v1"),
    (lambda model: model.url, "qwen2.5-coder",
     "the model server at {url} has no model 'qwen2.5-coder' (it has scripted): set MULL_LLM_MODEL to one it has"),
], ids=["no-v1", "unknown-model"])
def test_a_wrong_url_or_model_name_is_one_line_before_the_run(tmp_path: Path, scripted_model, url_of, model,
                                                              expected) -> None:
    repo = project(tmp_path)
    env = {**model_env(scripted_model, tmp_path), "MULL_LLM_BASE_URL": url_of(scripted_model), "MULL_LLM_MODEL": model}
    result = mull_try(repo, issue(tmp_path, "SCRIPT-none"), env)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == "mull: " + expected.format(base=scripted_model.base_url, url=scripted_model.url) + "\n"
    assert scripted_model.requests == []


CLI_AGENT = '''
import json, os, sys, urllib.request
prompt = open(sys.argv[1]).read()
request = urllib.request.Request(os.environ["OPENAI_BASE_URL"] + "/chat/completions", method="POST",
    data=json.dumps({"model": os.environ["OPENAI_MODEL"], "messages": [{"role": "user", "content": prompt}]}).encode(),
    headers={"authorization": "Bearer " + os.environ["OPENAI_API_KEY"], "content-type": "application/json"})
answer = json.load(urllib.request.urlopen(request))["choices"][0]["message"]["content"]
open("app.py", "w").write(answer + "\\n")
print("wrote app.py")
'''


def test_a_cli_agent_shows_its_phases_and_the_gateways_count(tmp_path: Path, scripted_model) -> None:
    repo = project(tmp_path)
    agent = tmp_path / "tiny_agent.py"
    agent.write_text(CLI_AGENT)
    scripted_model.script("SCRIPT-cli", [{"content": "print('hello')"}])
    env = model_env(scripted_model, tmp_path, MULL_AGENT_COMMAND=f"python3 {agent} {{prompt_file}}")
    screen = run_in_terminal([MULL, "try", "--repo", str(repo), "--issue-file", str(issue(tmp_path, "SCRIPT-cli"))],
                             env, cwd=tmp_path)
    assert screen.returncode == 0, screen.text
    lines = screen.lines
    assert any(line.startswith("• running the agent `python3` with scripted (at most 40 model requests")
               for line in lines)
    assert "• agent command started" in lines
    assert any(re.fullmatch(r"• agent command exited with code 0 after [\d.]+ s", line) for line in lines)
    assert sum(line.startswith("  · model: ") for line in lines) == 1
    assert "+print('hello')" in lines and "  M app.py +1 -1" in lines
    assert re.search(r"Used: 1 model request, [\d,]+ tokens", screen.text)
    patch = Path(re.search(r"Patch: (\S+\.patch);", screen.text).group(1))
    try:
        applies(repo, patch.read_text())
    finally:
        patch.unlink()


def with_config(tmp_path: Path, config: dict) -> Path:
    files = {"app.py": "print('helo')\n", ".github/mull.yml": json.dumps(config) + "\n"}
    return project(tmp_path, files)


def test_setup_runs_before_the_agent_and_the_tests_after_it_as_on_github(tmp_path: Path, scripted_model) -> None:
    repo = with_config(tmp_path, {"setup": ["mkdir -p build && echo made > build/out.txt"],
                                  "test": "test -f build/out.txt && grep -q hello app.py"})
    scripted_model.script("SCRIPT-setup", typo_fix("SCRIPT-setup"))
    result = mull_try(repo, issue(tmp_path, "SCRIPT-setup"), model_env(scripted_model, tmp_path))
    assert result.returncode == 0, result.stderr
    assert "+print('hello')" in result.stdout and "build/" not in result.stdout  # setup's output stays out
    line, = result.stderr.splitlines()
    assert "; tests passed (test -f build/out.txt && grep -q hello app.py, " in line
    prompt = json.dumps(scripted_model.requests_for("SCRIPT-setup")[0]["body"]["messages"])
    assert "setup commands" in prompt and "grep -q hello app.py" in prompt  # the agent is told how to test
    applies(repo, result.stdout)


def test_failing_tests_exit_1_with_their_tail_and_the_critique_is_told(tmp_path: Path, scripted_model) -> None:
    repo = with_config(tmp_path, {"test": "grep -q goodbye app.py || { echo 'FAILED: no goodbye @octocat'; exit 1; }"})
    scripted_model.script("SCRIPT-red", typo_fix("SCRIPT-red", summary="Fixed the typo. REVIEW-red"))
    scripted_model.script("REVIEW-red", [{"tool_calls": [{"name": "submit_critique", "arguments": {
        "summary": "Tests fail.", "effort": 1, "risks": [], "security": [], "findings": [], "tests": "none",
        "tests_note": "", "verdict": "fix"}}]}])
    result = mull_try(repo, issue(tmp_path, "SCRIPT-red"), model_env(scripted_model, tmp_path), "--critique")
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("diff --git")  # the patch is still there to look at
    err = result.stderr.splitlines()
    assert "  FAILED: no goodbye @octocat" in err
    assert "tests failed (grep -q goodbye app.py" in err[-1] and "exited with code 1" in err[-1]
    prompt = json.dumps(scripted_model.requests_for("REVIEW-red")[0]["body"]["messages"])
    assert "they FAILED" in prompt and "FAILED: no goodbye" in prompt


def test_a_failing_setup_stops_before_the_agent_and_says_how_to_fix_it(tmp_path: Path, scripted_model) -> None:
    repo = with_config(tmp_path, {"setup": ["true", "echo boom-output; exit 3", "echo never"]})
    scripted_model.script("SCRIPT-nosetup", typo_fix("SCRIPT-nosetup"))
    result = mull_try(repo, issue(tmp_path, "SCRIPT-nosetup"), model_env(scripted_model, tmp_path))
    assert result.returncode == 1 and result.stdout == ""
    assert "setup failed: `echo boom-output; exit 3` exited with code 3" in result.stderr
    assert "  boom-output" in result.stderr and "never" not in result.stderr.replace("echo never", "")
    assert "fix `setup:` in .github/mull.yml" in result.stderr
    assert scripted_model.requests_for("SCRIPT-nosetup") == []  # the agent never ran


@pytest.mark.parametrize(("config", "says"), [
    ({"setup": "pip install -e ."}, "setup"),
    ({"tset": "pytest"}, "tset"),
    ({"network": {"allow": ["evil.example"]}}, "network.allow"),
])
def test_a_bad_config_file_is_refused_before_the_run_naming_the_key(tmp_path: Path, scripted_model,
                                                                     config: dict, says: str) -> None:
    repo = with_config(tmp_path, config)
    scripted_model.script("SCRIPT-badcfg", typo_fix("SCRIPT-badcfg"))
    result = mull_try(repo, issue(tmp_path, "SCRIPT-badcfg"), model_env(scripted_model, tmp_path))
    assert result.returncode == 2 and result.stdout == ""
    message, = result.stderr.splitlines()
    assert message.startswith("mull: project:.github/mull.yml: ") and says in message, message
    assert "fix it there" in message and scripted_model.requests_for("SCRIPT-badcfg") == []
