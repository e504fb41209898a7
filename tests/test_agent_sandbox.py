"""Agent commands run confined, with a clean environment, and die whole on timeout.

Real bwrap and real processes: the point is what the kernel enforces, not what argv looks like.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from doubles.sandboxes import needs_bwrap

from worker.agent.sandbox import (
    SandboxSpec,
    SandboxUnavailable,
    bwrap_argv,
    check_bwrap,
    clean_env,
    run_argv,
    run_command,
)

CONFINED = SandboxSpec(enabled=True)
UNCONFINED = SandboxSpec(enabled=False)


def run(command: str, cwd: Path, spec: SandboxSpec, timeout: float = 20, **kwargs):  # type: ignore[no-untyped-def]
    return asyncio.run(run_command(command, cwd, spec, timeout, **kwargs))


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "worktrees" / "issue-1"
    path.mkdir(parents=True)
    return path


@needs_bwrap
def test_cannot_write_outside_the_worktree(worktree: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    result = run(f"echo ok > inside.txt; touch {outside}/x; touch /usr/mull-was-here; echo end",
                 worktree, CONFINED)
    assert result.exit_code == 0 and "end" in result.output
    assert (worktree / "inside.txt").read_text() == "ok\n"
    assert not (outside / "x").exists()
    assert not Path("/usr/mull-was-here").exists()
    assert "Read-only file system" in result.output or "No such file" in result.output


@needs_bwrap
def test_hidden_paths_are_masked_but_worktree_beneath_stays_usable(worktree: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "state.db").write_text("SECRET-STATE")
    key = tmp_path / "app.pem"
    key.write_text("SECRET-KEY")
    spec = SandboxSpec(enabled=True, hidden_paths=(data, key))
    result = run(f"cat {data}/state.db {key}; ls {data}; echo written > file.txt; cat file.txt",
                 worktree, spec)
    assert "SECRET" not in result.output
    assert "written" in result.output
    assert (worktree / "file.txt").exists()
    assert (data / "state.db").read_text() == "SECRET-STATE"  # masked, not emptied


@needs_bwrap
def test_git_works_in_a_worktree_of_a_masked_mirror(tmp_path: Path) -> None:
    data = tmp_path / "data"
    source = tmp_path / "source"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main", str(source)], check=True)
    (source / "a.txt").write_text("a\n")
    subprocess.run([*git, "-C", str(source), "add", "."], check=True)
    subprocess.run([*git, "-C", str(source), "commit", "-qm", "init"], check=True)
    mirror = data / "mirrors" / "repo.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(source), str(mirror)], check=True)
    worktree = data / "worktrees" / "issue-1"
    subprocess.run(["git", "-C", str(mirror), "worktree", "add", "-q", str(worktree), "main"], check=True)
    spec = SandboxSpec(enabled=True, hidden_paths=(data,), ro_paths=(mirror,),
                       rw_paths=(mirror / "worktrees" / "issue-1",))
    result = run("echo b >> a.txt && git status --short && git diff --stat && touch ../../mirrors/repo.git/x",
                 worktree, spec)
    assert " M a.txt" in result.output, result.output
    assert "1 file changed" in result.output
    assert not (mirror / "x").exists()


@needs_bwrap
def test_no_network_unless_asked(worktree: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        # bash's /dev/tcp: no interpreter needed inside the sandbox (the test venv may sit under a masked /tmp)
        probe = f"bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}' && echo connected"
        offline = run(probe, worktree, CONFINED)
        online = run(probe, worktree, SandboxSpec(enabled=True, network=True))
    assert offline.exit_code != 0 and "connected" not in offline.output
    assert online.exit_code == 0 and "connected" in online.output


@pytest.mark.parametrize("spec", [pytest.param(CONFINED, marks=needs_bwrap), UNCONFINED],
                         ids=["bwrap", "unconfined"])
def test_environment_carries_no_credentials(worktree: Path, monkeypatch: pytest.MonkeyPatch,
                                            spec: SandboxSpec) -> None:
    monkeypatch.setenv("MULL_WEBHOOK_SECRET", "hook-secret")
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_token")
    monkeypatch.setenv("GH_TOKEN", "gh_token")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws")
    monkeypatch.setenv("LANG", "C.UTF-8")
    spec = SandboxSpec(enabled=spec.enabled, env={"OPENAI_API_KEY": "for-the-cli"})
    result = run("env", worktree, spec)
    names = {line.split("=", 1)[0] for line in result.output.splitlines() if "=" in line}
    assert not {"MULL_WEBHOOK_SECRET", "GITHUB_TOKEN", "GH_TOKEN", "AWS_SECRET_ACCESS_KEY"} & names
    assert "hook-secret" not in result.output and "ghs_token" not in result.output
    assert "OPENAI_API_KEY=for-the-cli" in result.output
    assert "LANG=C.UTF-8" in result.output
    assert "HOME=" in result.output


@pytest.mark.parametrize("name", ["MULL_DATA_DIR", "GITHUB_TOKEN", "GH_TOKEN", "mull_x"])
def test_clean_env_refuses_mull_and_github_variables(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        clean_env({name: "x"})


def _running(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
                status = (entry / "status").read_text()
            except OSError:
                continue
            if marker.encode() in cmdline and "State:\tZ" not in status:
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize("spec", [pytest.param(CONFINED, marks=needs_bwrap), UNCONFINED],
                         ids=["bwrap", "unconfined"])
def test_timeout_kills_the_whole_process_group(worktree: Path, spec: SandboxSpec) -> None:
    marker = f"100.{os.getpid()}{int(spec.enabled)}"
    started = time.monotonic()
    result = run(f"sleep {marker}1 & sleep {marker}2", worktree, spec, timeout=1)
    assert result.timed_out and result.exit_code is None
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 3
    while _running(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _running(marker) == []


def test_background_processes_do_not_outlive_a_finished_command(worktree: Path) -> None:
    marker = f"100.{os.getpid()}9"
    started = time.monotonic()
    result = run(f"sleep {marker} & echo started", worktree, UNCONFINED, timeout=20)
    assert result.exit_code == 0 and "started" in result.output
    assert time.monotonic() - started < 5
    time.sleep(0.1)
    assert _running(marker) == []


def test_output_is_merged_and_truncated_with_a_marker(worktree: Path) -> None:
    result = run("echo to-stderr >&2; head -c 50000 /dev/zero | tr '\\0' x; echo; echo last-line",
                 worktree, UNCONFINED, output_limit=3000)
    assert result.output.startswith("to-stderr")
    assert "[output truncated: " in result.output and " more bytes]" in result.output
    assert result.output.rstrip().endswith("last-line")
    assert len(result.output) < 3200


def test_exit_code_and_undecodable_output(worktree: Path) -> None:
    result = asyncio.run(run_argv(["sh", "-c", "printf '\\377ok'; exit 3"], worktree, UNCONFINED, 20))
    assert result.exit_code == 3 and not result.timed_out
    assert result.output == "\ufffdok"


def test_check_bwrap_names_the_fix_when_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SandboxUnavailable) as caught:
        check_bwrap()
    assert "apt-get install bubblewrap" in str(caught.value)
    assert "MULL_SANDBOX=false" in str(caught.value)


def test_check_bwrap_reports_bwrap_stderr(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    assert shutil.which("bwrap") == str(fake)
    with pytest.raises(SandboxUnavailable, match="No permissions to creating new namespace"):
        check_bwrap()


def test_bwrap_command_line_orders_mounts_parent_first_and_carries_no_env_values(tmp_path: Path) -> None:
    data = tmp_path / "data"
    mirror = data / "mirrors" / "r.git"
    gitdir = mirror / "worktrees" / "wt"
    worktree = data / "worktrees" / "wt"
    for path in (gitdir, worktree):
        path.mkdir(parents=True)
    spec = SandboxSpec(hidden_paths=(data,), ro_paths=(mirror,), rw_paths=(gitdir,),
                       env={"OPENAI_API_KEY": "sk-not-on-the-command-line"})
    argv = bwrap_argv(["true"], worktree, spec, clean_env(spec.env))
    assert "sk-not-on-the-command-line" not in " ".join(argv)
    position = {target: argv.index(str(target.resolve())) for target in (data, mirror, gitdir, worktree)}
    assert position[data] < position[mirror] < position[gitdir]
    assert position[data] < position[worktree]
