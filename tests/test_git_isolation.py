"""Git is Mull's alone: whatever an agent leaves in its tree, Mull's commit and push obey none of it.

Each test writes what a hostile agent (or the repository's own build scripts) could write into the run's
tree, then calls Mull's commit and push on real git, and checks three things: the attack failed, nothing
ran on the host (hostile commands would create a canary file), and the legitimate change was committed.
"""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from doubles.seed_repo import git_in as sh
from doubles.seed_repo import seeded_bare

from worker.trees.repo_cache import RepoCache, push
from worker.trees.run_tree import RunTree
from worker.trees.tree_commit import commit

TOKEN = "ghs_isolationtesttokenisolationtest"
BRANCH = "mull/issue-9"


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    return seeded_bare(tmp_path, {"app.py": "print('helo')\n", "gone.txt": "delete me\n",
                                  "run.sh": "#!/bin/sh\necho hi\n", ".gitignore": "*.log\nbuild/\n",
                                  "kept.log": "tracked although ignored\n"})


@pytest.fixture
def attacker(tmp_path: Path) -> Path:
    bare = tmp_path / "attacker.git"
    sh(tmp_path, "init", "-q", "--bare", str(bare))
    return bare


def canaries(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.glob("canary*"))


def hostile_repo(where: Path, canary: Path, attacker: Path, origin: Path) -> None:
    """Make ``where/.git`` a working repository whose config and hooks attack any git that reads it."""
    sh(where, "init", "-q")
    for key, value in [("core.fsmonitor", f"touch {canary}-fsmonitor"), ("core.hooksPath", str(where / ".git/hooks")),
                       ("filter.evil.clean", f"touch {canary}-clean; cat"),
                       ("filter.evil.smudge", f"touch {canary}-smudge; cat"), ("filter.evil.required", "true"),
                       ("diff.x.textconv", f"touch {canary}-textconv; cat"),
                       (f"url.{attacker}.insteadOf", str(origin)), ("remote.origin.url", str(attacker)),
                       ("credential.helper", f"!touch {canary}-credential; echo"),
                       ("core.sshCommand", f"touch {canary}-ssh; ssh")]:
        sh(where, "config", key, value)
    hooks = where / ".git" / "hooks"
    hooks.mkdir(exist_ok=True)
    for hook in ("pre-commit", "post-commit", "reference-transaction", "pre-push", "post-checkout",
                 "post-index-change"):
        (hooks / hook).write_text(f"#!/bin/sh\ntouch {canary}-{hook}\n")
        (hooks / hook).chmod(0o755)


def run_attack(tmp_path: Path, origin: Path, agent: Callable[[RunTree], None],
               agent_repo: bool = False) -> tuple[str | None, list[str]]:
    """Fetch, give ``agent`` the tree, commit and push as Mull does; the commit and the run dir's files."""

    async def scenario() -> tuple[str | None, list[str]]:
        cache = RepoCache(tmp_path / "data")
        mirror = await cache.fetch(9, str(origin), token=TOKEN)
        async with cache.run_tree(9, "9-issue-9", "refs/remotes/origin/main", agent_repo=agent_repo) as run:
            agent(run)
            sha = await asyncio.wait_for(commit(run, "Fix the typo\n", "mull[bot]", "1+mull[bot]@x"), 60)
            if sha is not None:
                await push(mirror, str(origin), sha, BRANCH, None, TOKEN)
            left = [str(p) for p in run.run_dir.rglob("*") if p.is_file() and not p.is_symlink()
                    and TOKEN.encode() in p.read_bytes()]
        return sha, left

    return asyncio.run(scenario())


def pushed(origin: Path) -> dict[str, str]:
    """path → "mode oid" of the branch as the real remote has it."""
    listing = sh(origin, "ls-tree", "-r", "-z", f"refs/heads/{BRANCH}")
    return {line.split("\t", 1)[1]: line.split("\t")[0] for line in listing.split("\0") if line}


def fix_typo(tree: Path) -> None:
    (tree / "app.py").write_text("print('hello')\n")


def test_a_poisoned_git_dir_in_the_tree_is_neither_obeyed_nor_committed(tmp_path: Path, origin: Path,
                                                                        attacker: Path) -> None:
    canary = tmp_path / "canary"

    def agent(run: RunTree) -> None:
        hostile_repo(run.tree, canary, attacker, origin)
        (run.tree / ".gitattributes").write_text("* filter=evil diff=x\n")
        fix_typo(run.tree)

    sha, token_files = run_attack(tmp_path, origin, agent)
    assert canaries(tmp_path) == []
    files = pushed(origin)
    assert sorted(files) == [".gitattributes", ".gitignore", "app.py", "gone.txt", "kept.log", "run.sh"]
    assert sh(origin, "show", f"{sha}:app.py") == "print('hello')\n"
    assert sh(attacker, "for-each-ref") == ""  # the push reached the real remote only
    assert token_files == []


def test_the_workers_own_git_config_is_not_read(tmp_path: Path, origin: Path, attacker: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever HOME, XDG or GIT_* the worker runs with, git reads no global config and prompts for nothing."""
    home = tmp_path / "home"
    home.mkdir()
    hostile_repo(home, tmp_path / "canary", attacker, origin)
    (home / ".gitconfig").write_text((home / ".git" / "config").read_text())
    (home / ".config" / "git").mkdir(parents=True)
    (home / ".config" / "git" / "config").write_text((home / ".git" / "config").read_text())
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    monkeypatch.setenv("GIT_DIR", str(home / ".git"))
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", f"'core.hooksPath'='{home / '.git/hooks'}'")

    sha, _ = run_attack(tmp_path, origin, lambda run: fix_typo(run.tree))
    assert canaries(tmp_path) == []
    assert sha and sh(origin, "rev-parse", f"refs/heads/{BRANCH}").strip() == sha
    assert sh(attacker, "for-each-ref") == ""


def test_a_git_file_pointing_at_the_mirror_and_worktree_poison_are_ignored(tmp_path: Path, origin: Path,
                                                                           attacker: Path) -> None:
    canary = tmp_path / "canary"
    evil = tmp_path / "evil-common"

    def agent(run: RunTree) -> None:
        (run.tree / ".git").write_text(f"gitdir: {run.mirror}\n")
        sub = run.tree / "pkg"
        sub.mkdir()
        hostile_repo(sub, canary, attacker, origin)  # a nested repository: pkg/.git
        (sub / ".git" / "commondir").write_text(f"{evil}\n")
        (sub / ".git" / "config.worktree").write_text(f"[core]\n\tfsmonitor = touch {canary}-worktree\n")
        (sub / "mod.py").write_text("x = 1\n")
        upper = run.tree / "lib"
        upper.mkdir()
        (upper / ".GIT").mkdir()
        (upper / ".GIT" / "config").write_text(f"[core]\n\tfsmonitor = touch {canary}-upper\n")
        (upper / ".Git").write_text(f"gitdir: {run.mirror}\n")
        (upper / "git~1").write_text("what Windows calls .git\n")
        (upper / ".git. ").write_text("what NTFS calls .git\n")
        fix_typo(run.tree)

    sha, _ = run_attack(tmp_path, origin, agent)
    assert sha and canaries(tmp_path) == []
    assert sorted(pushed(origin)) == [".gitignore", "app.py", "gone.txt", "kept.log", "pkg/mod.py", "run.sh"]


def test_links_are_stored_as_links_and_never_followed(tmp_path: Path, origin: Path) -> None:
    def agent(run: RunTree) -> None:
        (run.tree / "passwd").symlink_to("/etc/passwd")
        (run.tree / "root").symlink_to("/")
        (run.tree / "loop").symlink_to("loop")
        fix_typo(run.tree)

    sha, _ = run_attack(tmp_path, origin, agent)
    files = pushed(origin)
    assert files["passwd"].startswith("120000 blob") and files["root"].startswith("120000 blob")
    assert sh(origin, "cat-file", "blob", f"{sha}:passwd") == "/etc/passwd"
    assert sh(origin, "cat-file", "blob", f"{sha}:root") == "/"
    assert not any(path.startswith("root/") for path in files)  # "/" was not walked


def test_fifos_and_a_fifo_gitignore_do_not_block_and_are_not_committed(tmp_path: Path, origin: Path) -> None:
    fifos: list[Path] = []
    rescued: list[Path] = []

    def rescue() -> None:
        """Only if a reader blocked on a FIFO: open its other end, so the test fails instead of hanging."""
        for fifo in fifos:
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
                rescued.append(fifo)
            except OSError:
                pass  # nobody is reading it

    def agent(run: RunTree) -> None:
        (run.tree / "sub").mkdir()
        fifos.extend([run.tree / "pipe", run.tree / "sub" / ".gitignore"])  # git would open an ignore file
        for fifo in fifos:
            os.mkfifo(fifo)
        (run.tree / "sub" / "new.py").write_text("y = 2\n")
        fix_typo(run.tree)

    done = threading.Event()
    watchdog = threading.Thread(target=lambda: [rescue() for _ in iter(lambda: done.wait(10), True)], daemon=True)
    watchdog.start()
    try:
        sha, _ = run_attack(tmp_path, origin, agent)
    finally:
        done.set()
        watchdog.join()
    assert rescued == []
    files = pushed(origin)
    assert sha and "pipe" not in files and "sub/.gitignore" not in files and "sub/new.py" in files


def test_what_git_add_all_would_take_and_nothing_else(tmp_path: Path, origin: Path) -> None:
    def agent(run: RunTree) -> None:
        tree = run.tree
        fix_typo(tree)
        (tree / "gone.txt").unlink()
        (tree / "run.sh").chmod(0o755)
        (tree / "new.log").write_text("ignored by the repository's .gitignore\n")
        (tree / "build").mkdir()
        (tree / "build" / "out.o").write_text("ignored directory\n")
        (tree / "kept.log").write_text("tracked: stays and changes\n")
        (tree / "pkg" / "__pycache__").mkdir(parents=True)
        (tree / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\x00bytecode")
        (tree / "pkg" / "stray.pyc").write_bytes(b"\x00bytecode")
        (tree / "pkg" / "mod.py").write_text("z = 3\n")
        (tree / "pkg" / ".gitignore").write_text("secret.txt\n")
        (tree / "pkg" / "secret.txt").write_text("ignored by a .gitignore the agent wrote\n")
        (tree / ":!odd name\nwith newline \"q\"").write_text("any name git can store\n")
        (tree / "empty-dir").mkdir()

    sha, _ = run_attack(tmp_path, origin, agent)
    files = pushed(origin)
    assert sorted(files) == [".gitignore", ":!odd name\nwith newline \"q\"", "app.py", "kept.log",
                             "pkg/.gitignore", "pkg/mod.py", "run.sh"]
    assert files["run.sh"].startswith("100755") and files["app.py"].startswith("100644")
    assert sh(origin, "show", f"{sha}:kept.log") == "tracked: stays and changes\n"
    assert sh(origin, "rev-list", "--count", f"main..{BRANCH}").strip() == "1"


def test_a_renamed_file_reuses_its_blob_and_no_change_is_none(tmp_path: Path, origin: Path) -> None:
    sha, _ = run_attack(tmp_path, origin, lambda run: None)
    assert sha is None

    def agent(run: RunTree) -> None:
        (run.tree / "app.py").rename(run.tree / "main.py")
        (run.tree / "run.sh").chmod(0o755)
        (run.tree / "run.sh").chmod(0o644)  # changed back: no change

    sha, _ = run_attack(tmp_path, origin, agent)
    diff = sh(origin, "diff", "--name-status", "-M", "main", sha or "")
    assert diff.split() == ["R100", "app.py", "main.py"]


def test_the_agents_disposable_repository_stays_out(tmp_path: Path, origin: Path, attacker: Path) -> None:
    canary = tmp_path / "canary"

    def agent(run: RunTree) -> None:
        assert (run.tree / ".git" / "HEAD").is_file()
        fix_typo(run.tree)
        sh(run.tree, "-c", "user.name=a", "-c", "user.email=a@a", "commit", "-qam", "the agent's commit")
        hostile_repo(run.tree, canary, attacker, origin)  # re-init keeps the repository, adds the poison

    sha, _ = run_attack(tmp_path, origin, agent, agent_repo=True)
    assert canaries(tmp_path) == []
    assert sorted(pushed(origin)) == [".gitignore", "app.py", "gone.txt", "kept.log", "run.sh"]
    assert sh(origin, "log", "--format=%s", BRANCH).split("\n")[0] == "Fix the typo"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can make device nodes")
def test_device_nodes_are_left_alone(tmp_path: Path, origin: Path) -> None:
    def agent(run: RunTree) -> None:
        os.mknod(run.tree / "zero", stat.S_IFCHR | 0o666, os.makedev(1, 5))
        fix_typo(run.tree)

    sha, _ = run_attack(tmp_path, origin, agent)
    assert sha and "zero" not in pushed(origin)


def test_a_poisoned_mirror_config_is_rewritten_before_the_push(tmp_path: Path) -> None:
    """Even a write into Mull's own mirror (which no sandbox sees) cannot send the token elsewhere."""
    origin = seeded_bare(tmp_path, {"a.txt": "one\n"})
    attacker = tmp_path / "attacker.git"
    sh(tmp_path, "init", "-q", "--bare", str(attacker))
    canary = tmp_path / "canary"

    async def scenario() -> None:
        cache = RepoCache(tmp_path / "data")
        mirror = await cache.fetch(3, str(origin), token=TOKEN)
        async with cache.run_tree(3, "3-1", "refs/remotes/origin/main") as run:
            (run.tree / "b.txt").write_text("two\n")
            sha = await commit(run, "b\n", "mull[bot]", "1+mull[bot]@x")
        assert sha is not None
        with (mirror / "config").open("a") as config:
            config.write(f'[remote "origin"]\n\tpushurl = {attacker}\n[url "{attacker}"]\n\tinsteadOf = {origin}\n'
                         f"[core]\n\tfsmonitor = touch {canary}\n\thooksPath = {tmp_path}\n")
        await push(mirror, str(origin), sha, BRANCH, None, TOKEN)
        assert "attacker" not in (mirror / "config").read_text()

    asyncio.run(scenario())
    assert subprocess.run(["git", "--git-dir", str(origin), "rev-parse", "--verify", "-q", f"refs/heads/{BRANCH}"],
                          capture_output=True).returncode == 0
    assert subprocess.run(["git", "--git-dir", str(attacker), "for-each-ref"], capture_output=True,
                          text=True).stdout == ""
    assert not canary.exists()
