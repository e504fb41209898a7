"""Warm environments: setup's output kept per repository and key, restored into a later run's tree.

The archives hold what a stranger's setup wrote, so beside the round trip each hostile shape gets its test: a link
that would carry a write out of the tree, a tree whose folder is a link, FIFOs and devices, names that climb out,
git metadata, set-id bits, an executable that must never run. Real files, real git for the commit; nothing mocked.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import stat
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from doubles.recording_log import RecordingLog
from doubles.seed_repo import seeded_bare

from bot.settings import ConfigError, load_settings
from worker.jobs.boundary import JobRun
from worker.jobs.branch_work import _setup
from worker.repo_config.parse import parse_config
from worker.repo_config.schema import Defaults
from worker.trees.env_archive import REWRITE_LIMIT, capture, restore
from worker.trees.env_cache import EnvCache
from worker.trees.env_key import dependency_files, env_key, toolchain
from worker.trees.git_process import git
from worker.trees.repo_cache import RepoCache, init_mirror
from worker.trees.run_tree import open_run_tree
from worker.trees.tree_commit import commit, mark_setup

MB = 1024 * 1024
KEY = "a" * 64
SEED = {"app.py": "print('hi')\n", "requirements.txt": "tinydep\n", "pkg/__init__.py": ""}


def prepare(tree: Path) -> frozenset[bytes]:
    """What a Python setup leaves: a virtualenv (scripts naming the tree, links to the system interpreter,
    ``lib64 -> lib``), an egg-info beside the sources; the roots it created."""
    venv = tree / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "lib/site-packages/tinydep").mkdir(parents=True)
    (venv / "bin/pip").write_text(f"#!{tree.resolve()}/.venv/bin/python\nimport pip\n")
    (venv / "bin/pip").chmod(0o755)
    (venv / "pyvenv.cfg").write_text(f"home = /usr/bin\ncommand = /usr/bin/python3 -m venv {tree.resolve()}/.venv\n")
    (venv / "lib/site-packages/tinydep/__init__.py").write_text("VALUE = 42\n")
    (venv / "lib/site-packages/blob.bin").write_bytes(b"\0" + os.fsencode(tree.resolve()) + b"\0")
    os.utime(venv / "lib/site-packages/tinydep/__init__.py", (1_600_000_000, 1_600_000_000))
    os.symlink("/usr/bin/python3", venv / "bin/python")
    os.symlink("lib", venv / "lib64")
    (tree / "pkg/pkg.egg-info").mkdir()
    (tree / "pkg/pkg.egg-info/PKG-INFO").write_text("Name: pkg\n")
    return frozenset({b".venv", b"pkg/pkg.egg-info"})


def make_tree(path: Path) -> Path:
    (path / "pkg").mkdir(parents=True)
    (path / "app.py").write_text("print('hi')\n")
    return path


def archived(tree: Path, roots: frozenset[bytes], limit: int = 100 * MB) -> bytes:
    out = io.BytesIO()
    capture(tree, roots, out, limit)
    return out.getvalue()


def test_a_captured_environment_comes_back_whole_in_another_tree(tmp_path: Path) -> None:
    first = make_tree(tmp_path / "run-1" / "tree")
    roots = prepare(first)
    second = make_tree(tmp_path / "run-22" / "tree")

    done = restore(io.BytesIO(archived(first, roots)), second)

    assert done.ok and done.skipped == 0 and done.files == 5, done
    venv = second / ".venv"
    assert (venv / "bin/pip").read_text() == f"#!{second.resolve()}/.venv/bin/python\nimport pip\n"  # rewritten
    assert str(second.resolve()) in (venv / "pyvenv.cfg").read_text()
    blob = (venv / "lib/site-packages/blob.bin").read_bytes()
    assert blob == b"\0" + os.fsencode(first.resolve()) + b"\0"  # binary files are never rewritten
    assert stat.S_IMODE((venv / "bin/pip").stat().st_mode) == 0o755
    assert os.readlink(venv / "bin/python") == "/usr/bin/python3" and os.readlink(venv / "lib64") == "lib"
    assert (venv / "lib/site-packages/tinydep/__init__.py").stat().st_mtime == 1_600_000_000
    assert (second / "pkg/pkg.egg-info/PKG-INFO").read_text() == "Name: pkg\n"


def test_a_file_larger_than_the_rewrite_limit_comes_back_as_it_was(tmp_path: Path) -> None:
    first = make_tree(tmp_path / "one" / "tree")
    (first / "build").mkdir()
    big = os.fsencode(first.resolve()) + os.urandom(REWRITE_LIMIT) + b"\n"
    (first / "build/big.txt").write_bytes(big)
    second = make_tree(tmp_path / "two" / "tree")

    assert restore(io.BytesIO(archived(first, frozenset({b"build"}))), second).ok
    assert (second / "build/big.txt").read_bytes() == big


def test_a_root_the_new_commit_tracks_is_a_conflict_and_nothing_is_restored(tmp_path: Path) -> None:
    first = make_tree(tmp_path / "one")
    roots = prepare(first)
    second = make_tree(tmp_path / "two")
    (second / ".venv").write_text("a tracked file now\n")

    done = restore(io.BytesIO(archived(first, roots)), second)

    assert not done.ok and ".venv exists" in done.why
    assert (second / ".venv").read_text() == "a tracked file now\n" and not (second / "pkg/pkg.egg-info").exists()


def tar_of(members: list[tuple[tarfile.TarInfo, bytes | None]], roots: list[str], tree: str = "/old/tree") -> bytes:
    """An archive written by hand, as a tampered cache file could be."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT,
                      pax_headers={"mull.tree": tree, "mull.roots": json.dumps(roots)}) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname = kind, mode, link
    return info


def test_a_link_in_the_archive_is_recreated_never_written_through(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    tree = make_tree(tmp_path / "tree")
    data = tar_of([(member(".venv", tarfile.SYMTYPE, link=str(outside)), None),
                   (member(".venv/evil.txt"), b"written outside\n"),
                   (member("dist", tarfile.DIRTYPE, 0o755), None),
                   (member("dist/up", tarfile.SYMTYPE, link="../../outside"), None),
                   (member("dist/up/evil.txt"), b"written outside\n")], [".venv", "dist"])

    done = restore(io.BytesIO(data), tree)

    assert done.ok and done.skipped == 2
    assert list(outside.iterdir()) == []
    assert os.readlink(tree / ".venv") == str(outside)  # a link is kept as a link: only sandboxes follow it


def test_a_folder_of_the_tree_that_is_a_link_is_never_entered(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    tree = tmp_path / "tree"
    tree.mkdir()
    os.symlink(outside, tree / "pkg")  # the new commit tracks pkg as a link out of the tree
    data = tar_of([(member("pkg/build", tarfile.DIRTYPE, 0o755), None), (member("pkg/build/x"), b"x\n")],
                  ["pkg/build"])

    done = restore(io.BytesIO(data), tree)

    assert not done.ok and "pkg/build" in done.why and list(outside.iterdir()) == []


@pytest.mark.parametrize("kind", [tarfile.FIFOTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.LNKTYPE])
def test_special_files_and_hard_links_in_the_archive_are_skipped(tmp_path: Path, kind: bytes) -> None:
    tree = make_tree(tmp_path / "tree")
    special = member(".venv/special", kind, link=".venv/real" if kind == tarfile.LNKTYPE else "")
    special.devmajor, special.devminor = 1, 3  # /dev/null's numbers, for the device kinds
    data = tar_of([(member(".venv", tarfile.DIRTYPE, 0o755), None), (member(".venv/real"), b"real\n"),
                   (special, None)], [".venv"])

    done = restore(io.BytesIO(data), tree)

    assert done.ok and done.skipped == 1 and done.files == 1
    assert not os.path.lexists(tree / ".venv/special") and (tree / ".venv/real").read_text() == "real\n"


def test_special_files_setup_made_are_never_captured(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    (tree / "node_modules").mkdir()
    os.mkfifo(tree / "node_modules/pipe")  # opening it to read would hang a capture that followed it
    (tree / "node_modules/index.js").write_text("module.exports = 1\n")

    with tarfile.open(fileobj=io.BytesIO(archived(tree, frozenset({b"node_modules"})))) as tar:
        assert tar.getnames() == ["node_modules", "node_modules/index.js"]


def test_bytecode_caches_are_left_for_python_to_write_again(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    (tree / ".venv/lib/dep/__pycache__").mkdir(parents=True)
    (tree / ".venv/lib/dep/__init__.py").write_text("VALUE = 1\n")
    (tree / ".venv/lib/dep/__pycache__/__init__.cpython-311.pyc").write_bytes(b"\x00bytecode")

    with tarfile.open(fileobj=io.BytesIO(archived(tree, frozenset({b".venv"})))) as tar:
        assert tar.getnames() == [".venv", ".venv/lib", ".venv/lib/dep", ".venv/lib/dep/__init__.py"]


def test_links_setup_made_are_captured_as_links_never_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("the worker's secret\n")
    tree = make_tree(tmp_path / "tree")
    (tree / ".venv").mkdir()
    os.symlink(secret, tree / ".venv/key")
    os.symlink(tmp_path, tree / ".venv/host")

    data = archived(tree, frozenset({b".venv"}))

    assert b"the worker's secret" not in data
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert sorted(tar.getnames()) == [".venv", ".venv/host", ".venv/key"]
        assert tar.getmember(".venv/key").issym()


@pytest.mark.parametrize("name", ["../escape.txt", "/tmp/escape.txt", ".venv/../../escape.txt", ".venv/.git/hooks/x",
                                  "other/escape.txt", ".venv//x"])
def test_names_outside_the_roots_are_skipped(tmp_path: Path, name: str) -> None:
    tree = make_tree(tmp_path / "run" / "tree")
    data = tar_of([(member(".venv", tarfile.DIRTYPE, 0o755), None), (member(".venv/ok"), b"ok\n"),
                   (member(name), b"escaped\n")], [".venv"])

    done = restore(io.BytesIO(data), tree)

    assert done.ok and done.skipped == 1
    found = [path for path in tmp_path.rglob("*") if path.is_file() and path.read_bytes() == b"escaped\n"]
    assert found == []


@pytest.mark.parametrize("roots", [["../up"], ["/abs"], [".git"], ["a/./b"], [""], "notalist", [1]])
def test_an_archive_naming_unsound_roots_is_refused(tmp_path: Path, roots) -> None:
    tree = make_tree(tmp_path / "tree")
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT,
                      pax_headers={"mull.roots": json.dumps(roots)}) as tar:
        tar.addfile(member("x", tarfile.DIRTYPE), None)

    done = restore(io.BytesIO(out.getvalue()), tree)

    assert not done.ok and "no roots" in done.why
    assert sorted(path.name for path in tree.iterdir()) == ["app.py", "pkg"]


def test_garbage_is_not_an_archive(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    done = restore(io.BytesIO(b"this is no tar file" * 100), tree)
    assert not done.ok and sorted(path.name for path in tree.iterdir()) == ["app.py", "pkg"]


def test_a_tree_too_deep_to_walk_is_not_kept_and_the_run_goes_on(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    depth = 1100  # deeper than the walk's recursion may go
    fds = [os.open(tree, os.O_RDONLY | os.O_DIRECTORY)]
    for level in range(depth):
        os.mkdir("deep" if level == 0 else "d", dir_fd=fds[-1])
        fds.append(os.open("deep" if level == 0 else "d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fds[-1]))
    try:
        envs = EnvCache(tmp_path / "envs", 100 * MB)
        stored = asyncio.run(envs.store(1, KEY, tree, frozenset({b"deep"})))
        assert stored.size == 0 and stored.why.startswith("not kept:")
        assert not envs.entry(1, KEY).exists() and list(envs.root.rglob("*.partial")) == []
    finally:  # bottom up: removing it recursively would meet the same limit
        for level in range(depth, 0, -1):
            os.close(fds[level])
            os.rmdir("deep" if level == 1 else "d", dir_fd=fds[level - 1])
        os.close(fds[0])


def test_an_archive_with_absurd_times_fails_whole(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    odd = member(".venv/file")
    odd.mtime = 10**30  # kept in a pax header; no file system takes it
    data = tar_of([(member(".venv", tarfile.DIRTYPE, 0o755), None), (odd, b"x\n")], [".venv"])

    done = restore(io.BytesIO(data), tree)

    assert not done.ok and "restore failed" in done.why
    assert not os.path.lexists(tree / ".venv")


def test_set_id_bits_are_dropped(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    data = tar_of([(member(".venv", tarfile.DIRTYPE, 0o3777), None), (member(".venv/run", mode=0o6755), b"x\n")],
                  [".venv"])
    assert restore(io.BytesIO(data), tree).ok
    assert stat.S_IMODE((tree / ".venv/run").stat().st_mode) == 0o755
    assert stat.S_IMODE((tree / ".venv").stat().st_mode) == 0o777


def test_a_restore_that_fails_midway_takes_back_what_it_made(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    data = tar_of([(member("node_modules", tarfile.DIRTYPE, 0o555), None), (member("node_modules/a"), b"a\n"),
                   (member("node_modules/a"), b"again\n")], ["node_modules"])  # the second one cannot be created

    done = restore(io.BytesIO(data), tree)

    assert not done.ok and "restore failed" in done.why
    assert not os.path.lexists(tree / "node_modules")


@pytest.fixture
def mirror(tmp_path: Path) -> Path:
    bare = seeded_bare(tmp_path, SEED, name="mirror.git")
    asyncio.run(init_mirror(bare))
    return bare


def test_restored_files_are_marked_never_committed_and_never_run(tmp_path: Path, mirror: Path) -> None:
    """Restore, mark and commit are Mull's host side: none of them runs a file the archive holds."""
    ran = tmp_path / "ran"
    hook = f"#!/bin/sh\ntouch {ran}\n"
    data = tar_of([(member(".venv", tarfile.DIRTYPE, 0o755), None), (member(".venv/bin", tarfile.DIRTYPE, 0o755), None),
                   (member(".venv/bin/python", mode=0o755), hook.encode()),
                   (member(".venv/bin/git", mode=0o755), hook.encode()),
                   (member(".venv/lib.pth", mode=0o644), f"import os; os.system('touch {ran}')\n".encode())],
                  [".venv"])

    async def scenario() -> tuple[frozenset[bytes], list[str]]:
        async with open_run_tree(tmp_path / "runs", mirror, "warm", "main", agent_repo=True) as run:
            assert restore(io.BytesIO(data), run.tree).ok
            marks = await mark_setup(run)
            (run.tree / "app.py").write_text("print('hello')\n")
            (run.tree / ".venv/agent.txt").write_text("under a setup root\n")
            sha = await commit(run, "Change\n", "mull[bot]", "1+mull[bot]@x", setup=marks)
            assert sha is not None
            return marks.roots, (await git("ls-tree", "-r", "--name-only", sha, git_dir=mirror)).split()

    roots, names = asyncio.run(scenario())
    assert roots == {b".venv"}
    assert sorted(names) == ["app.py", "pkg/__init__.py", "requirements.txt"]
    assert not ran.exists()


# The cache: keys, bounds, concurrency.

def cache_tree(tmp_path: Path, name: str, size: int = 1000) -> tuple[Path, frozenset[bytes]]:
    tree = make_tree(tmp_path / name / "tree")
    (tree / ".venv").mkdir()
    (tree / ".venv/data").write_bytes(os.urandom(size))
    return tree, frozenset({b".venv"})


def test_a_stored_environment_is_restored_and_a_miss_says_so(tmp_path: Path) -> None:
    envs = EnvCache(tmp_path / "envs", 10 * MB)
    tree, roots = cache_tree(tmp_path, "one")
    fresh = make_tree(tmp_path / "two" / "tree")

    async def scenario() -> None:
        assert (await envs.restore(7, KEY, fresh)).why == "no cached environment"
        stored = await envs.store(7, KEY, tree, roots)
        assert stored.size > 1000 and envs.entry(7, KEY).exists()
        assert (await envs.restore(7, KEY, fresh)).ok
        assert not (await envs.restore(8, KEY, make_tree(tmp_path / "three"))).ok  # per repository

    asyncio.run(scenario())
    assert (fresh / ".venv/data").read_bytes() == (tree / ".venv/data").read_bytes()


def test_the_least_recently_used_go_first_and_an_oversized_one_is_never_kept(tmp_path: Path) -> None:
    envs = EnvCache(tmp_path / "envs", 250_000)
    keys = [str(n) * 64 for n in range(1, 5)]

    async def scenario() -> None:
        for n, key in enumerate(keys[:2]):
            tree, roots = cache_tree(tmp_path, f"r{n}", 100_000)
            await envs.store(1, key, tree, roots)
        os.utime(envs.entry(1, keys[0]), (1, 1))  # restored long ago …
        assert (await envs.restore(1, keys[0], make_tree(tmp_path / "use"))).ok  # … and now again: most recent
        tree, roots = cache_tree(tmp_path, "r2", 100_000)
        stored = await envs.store(2, keys[2], tree, roots)
        assert stored.evicted == 1
        big, big_roots = cache_tree(tmp_path, "big", 300_000)
        assert (await envs.store(1, keys[3], big, big_roots)).why.startswith("larger than the cache's 250000 bytes")

    asyncio.run(scenario())
    assert envs.entry(1, keys[0]).exists() and not envs.entry(1, keys[1]).exists()
    assert envs.entry(2, keys[2]).exists() and not envs.entry(1, keys[3]).exists()
    assert [path.name for path in envs.root.rglob("*.partial")] == []


def test_concurrent_runs_of_one_repository_store_once_and_read_whole_archives(tmp_path: Path) -> None:
    envs = EnvCache(tmp_path / "envs", 100 * MB)
    trees = [cache_tree(tmp_path, f"w{n}", 2 * MB) for n in range(3)]

    async def scenario() -> None:
        results = await asyncio.gather(*(envs.store(3, KEY, tree, roots) for tree, roots in trees))
        assert sorted(bool(result.size) for result in results) == [False, False, True]
        targets = [make_tree(tmp_path / f"reader{n}") for n in range(3)]
        restored = await asyncio.gather(*(envs.restore(3, KEY, target) for target in targets))
        assert all(done.ok for done in restored)

    asyncio.run(scenario())


def test_a_store_in_another_thread_never_shows_a_partial_archive(tmp_path: Path) -> None:
    """A reader racing the writer finds no entry or a whole one: never a truncated archive."""
    envs = EnvCache(tmp_path / "envs", 100 * MB)
    tree, roots = cache_tree(tmp_path, "writer", 8 * MB)
    writer = threading.Thread(target=lambda: asyncio.run(envs.store(4, KEY, tree, roots)))
    writer.start()
    outcomes = []
    while writer.is_alive():
        outcomes.append(asyncio.run(envs.restore(4, KEY, make_tree(tmp_path / f"r{len(outcomes)}"))))
    writer.join()
    assert all(done.ok or done.why == "no cached environment" for done in outcomes), outcomes
    assert asyncio.run(envs.restore(4, KEY, make_tree(tmp_path / "after"))).ok


def test_an_entry_evicted_while_read_is_still_restored(tmp_path: Path) -> None:
    envs = EnvCache(tmp_path / "envs", 100 * MB)
    tree, roots = cache_tree(tmp_path, "one")
    asyncio.run(envs.store(5, KEY, tree, roots))
    with open(envs.entry(5, KEY), "rb") as reader:
        envs.entry(5, KEY).unlink()
        assert restore(reader, make_tree(tmp_path / "two")).ok


def test_the_cache_can_be_turned_off_and_refuses_a_bad_key(tmp_path: Path) -> None:
    envs = EnvCache(tmp_path / "envs", 0)
    tree, roots = cache_tree(tmp_path, "one")
    assert asyncio.run(envs.store(1, KEY, tree, roots)).why == "the cache is off"
    assert not (tmp_path / "envs").exists()
    with pytest.raises(ValueError, match="not an environment key"):
        EnvCache(tmp_path / "envs", MB).entry(1, "../../etc")


@pytest.mark.parametrize("value", ["-1", "lots"])
def test_a_bad_cache_size_names_the_setting(value: str) -> None:
    with pytest.raises(ConfigError, match="MULL_ENV_CACHE_MB"):
        load_settings({"MULL_ENV_CACHE_MB": value}, env_file=None)
    assert load_settings({}, env_file=None).env_cache_mb == 2048


def key_of(commands: list[str], tracked: dict[bytes, str], **changes) -> str:
    settings = {"sandboxed": True, "ro_paths": [], "host": {"machine": "x"}, **changes}
    return env_key(commands, tracked, **settings)


def test_the_key_follows_the_commands_and_the_dependency_files_only() -> None:
    tracked = {b"app.py": "1", b"requirements-dev.txt": "2", b"web/package-lock.json": "3", b"ci/deps.in": "4",
               b"requirements/base.txt": "5", b"docs/guide.md": "6"}
    commands = ["python3 -m venv .venv", ".venv/bin/pip install -r ./ci/deps.in --constraint=ci/pins.txt"]
    assert dependency_files(commands, tracked) == {"requirements-dev.txt": "2", "web/package-lock.json": "3",
                                                   "ci/deps.in": "4", "requirements/base.txt": "5"}
    key = key_of(commands, tracked)
    assert key == key_of(commands, {**tracked, b"app.py": "changed", b"docs/new.md": "7"})
    variants: list[Callable[[], str]] = [
        lambda: key_of(commands, {**tracked, b"ci/deps.in": "changed"}),
        lambda: key_of(commands, {**tracked, b"ci/pins.txt": "new"}),
        lambda: key_of(commands, {**tracked, b"sub/Cargo.lock": "new"}),
        lambda: key_of([*commands, "make"], tracked),
        lambda: key_of(commands, tracked, sandboxed=False),
        lambda: key_of(commands, tracked, ro_paths=[Path("/opt/wheels")]),
        lambda: key_of(commands, tracked, host={"machine": "y"}),
    ]
    assert len({key, *(variant() for variant in variants)}) == len(variants) + 1


def test_the_toolchain_names_the_hosts_interpreters() -> None:
    found = toolchain()
    assert found["machine"] and isinstance(found["interpreters"], dict)
    assert any(name.endswith("python3") for name in found["interpreters"])


# The run's side (worker/jobs/branch_work.py): restore instead of setup; keep only what a default-branch tree made.

def test_setup_is_kept_only_from_the_default_branch_and_restored_instead_of_run(tmp_path: Path,
                                                                                mirror: Path) -> None:
    counter = tmp_path / "setup-ran"
    config = parse_config(json.dumps({"setup": [f"echo ran >> {counter}", "mkdir -p .venv && echo made > .venv/x"]}),
                          "test", Defaults())
    settings = load_settings({"MULL_SANDBOX": "false", "MULL_DATA_DIR": str(tmp_path / "data")}, env_file=None)
    repos = RepoCache(tmp_path / "data" / "repos")
    log = RecordingLog()
    job = JobRun(svc=SimpleNamespace(settings=settings, repos=repos), job_id="j", job_try=1,  # type: ignore[arg-type]
                 gh=None, log=log)  # type: ignore[arg-type]

    async def one(keep: bool) -> tuple[frozenset[bytes], str]:
        async with open_run_tree(tmp_path / "runs", mirror, "flow", "main") as run:
            marks, _blocked = await _setup(job, config, run, 9, keep=keep)
            assert marks is not None
            return marks.roots, (run.tree / ".venv/x").read_text()

    def stored() -> list[Path]:
        return list((repos.root / "envs").glob("9/*.tar"))

    assert asyncio.run(one(keep=False)) == ({b".venv"}, "made\n")  # an agent's branch: run, never kept
    assert counter.read_text() == "ran\n" and stored() == []
    assert asyncio.run(one(keep=True)) == ({b".venv"}, "made\n")  # the default branch: run and kept
    assert counter.read_text() == "ran\n" * 2 and len(stored()) == 1
    assert asyncio.run(one(keep=False)) == ({b".venv"}, "made\n")  # restored, on any branch
    assert counter.read_text() == "ran\n" * 2
    events = [event for _level, event, _fields in log.lines]
    assert events.count("setup restored from the environment cache") == 1 and events.count("setup run") == 2
