"""The builtin agent's file tools reach the tree through descriptors: a swapped-in link never leads out.

These hold without the run's tree lock (tests/test_agent_tree_lock.py): each test changes the tree at the
worst moment, or all the time, and checks that the worker read and wrote nothing outside the tree.
"""

from __future__ import annotations

import ctypes
import os
import socket
import stat
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from doubles.decoy_tree import SECRET, decoy_tree

from worker.agent import tree_fd
from worker.agent.workspace import PathRefused, Workspace, WorkspaceError

LIBC = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = decoy_tree(tmp_path)
    return root


def swap_in_link(root: Path) -> None:
    """What a command does between the worker's check and its open: d becomes a link to Mull's directory."""
    (root / "d").rename(root / "d.real")
    (root / "d").symlink_to(root.parent / "mull")


def test_a_parent_swapped_for_a_link_after_its_check_is_refused(tree: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    real_lstat = tree_fd._lstat

    def lstat_then_swap(name: str, dir_fd: int) -> int | None:
        mode = real_lstat(name, dir_fd)
        if name == "d" and not (tree / "d").is_symlink():
            swap_in_link(tree)  # after the check saw a directory, before the open
        return mode

    monkeypatch.setattr(tree_fd, "_lstat", lstat_then_swap)
    workspace = Workspace(tree)
    with pytest.raises(WorkspaceError, match="'d' is not a directory"):  # O_NOFOLLOW refused the link
        workspace.read("d/.env")
    (tree / "d").unlink()
    (tree / "d.real").rename(tree / "d")
    with pytest.raises(WorkspaceError, match="'d' is not a directory"):
        workspace.write("d/.env", "MULL_LLM_BASE_URL=https://attacker.example/v1\n")
    assert (tree.parent / "mull" / ".env").read_text() == SECRET + "\n"


def test_the_open_stays_on_the_directory_the_walk_holds(tree: Path) -> None:
    with tree_fd.locate(tree, "d/.env") as spot:
        swap_in_link(tree)  # the name now leads outside; the descriptor still holds the real directory
        fd = os.open(spot.name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=spot.parent)
        try:
            assert os.read(fd, 100) == b"decoy\n"
        finally:
            os.close(fd)
    with pytest.raises(PathRefused, match="outside the repository"):
        Workspace(tree).read("d/.env")


def exchange(root: Path, a: str, b: str) -> None:
    """renameat2(RENAME_EXCHANGE): ``a`` and ``b`` trade places atomically, as a command in the tree can do."""
    if LIBC.renameat2(AT_FDCWD, bytes(root / a), AT_FDCWD, bytes(root / b), RENAME_EXCHANGE) != 0:
        raise OSError(ctypes.get_errno(), "renameat2")


def race(tree: Path, attempt: Callable[[], object], seconds: float = 0.6) -> list[object]:
    """``attempt`` over and over while another thread swaps d with a link to Mull's directory."""
    if not (tree / "x").is_symlink():
        (tree / "x").symlink_to(tree.parent / "mull")
    stop = threading.Event()

    def swapper() -> None:
        while not stop.is_set():
            exchange(tree, "d", "x")
        if (tree / "d").is_symlink():
            exchange(tree, "d", "x")

    thread = threading.Thread(target=swapper, daemon=True)
    thread.start()
    results: list[object] = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            try:
                results.append(attempt())
            except (WorkspaceError, OSError) as exc:
                results.append(exc)
    finally:
        stop.set()
        thread.join()
    return results


def test_reads_racing_a_swapper_never_see_outside(tree: Path) -> None:
    workspace = Workspace(tree)
    results = race(tree, lambda: workspace.read("d/.env"))
    assert any("decoy" in str(result) for result in results)
    assert not any("from-the-workers-dotenv" in str(result) for result in results)
    searched = race(tree, lambda: workspace.search("SECRET|decoy"), seconds=0.3)
    assert not any("from-the-workers-dotenv" in str(result) for result in searched)


def test_writes_racing_a_swapper_never_land_outside(tree: Path) -> None:
    workspace = Workspace(tree)
    race(tree, lambda: workspace.write("d/.env", "planted\n"))
    race(tree, lambda: workspace.edit("d/.env", "planted", "edited"), seconds=0.3)
    assert (tree.parent / "mull" / ".env").read_text() == SECRET + "\n"
    assert sorted(p.name for p in (tree.parent / "mull").iterdir()) == [".env"]


def run_briefly(operation: Callable[[], object], seconds: float = 5.0) -> object:
    """The outcome of ``operation``, failing the test if it blocks (a daemon thread, so a hang cannot stall pytest)."""
    outcome: list[object] = []

    def target() -> None:
        try:
            outcome.append(operation())
        except (WorkspaceError, OSError) as exc:
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, "the file tool blocked"
    return outcome[0]


def test_a_fifo_is_refused_at_once_never_opened_for_waiting(tree: Path) -> None:
    os.mkfifo(tree / "notes.md")
    workspace = Workspace(tree)
    for operation in (lambda: workspace.read("notes.md"), lambda: workspace.search("x", "notes.md"),
                      lambda: workspace.edit("notes.md", "a", "b"), lambda: workspace.write("notes.md", "x")):
        started = time.monotonic()
        outcome = run_briefly(operation)
        assert isinstance(outcome, WorkspaceError) and "is a FIFO, not a regular file" in str(outcome)
        assert time.monotonic() - started < 1
    assert run_briefly(lambda: workspace.search("x")) == "no matches for 'x' under '.'"  # the walk skips it


def test_a_fifo_swapped_in_after_the_check_is_refused_by_fstat(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tree / "notes.md").write_text("hello\n")
    real_lstat = tree_fd._lstat

    def lstat_then_swap(name: str, dir_fd: int) -> int | None:
        mode = real_lstat(name, dir_fd)
        if name == "notes.md" and stat.S_ISREG(mode or 0):
            (tree / "notes.md").unlink()
            os.mkfifo(tree / "notes.md")
        return mode

    monkeypatch.setattr(tree_fd, "_lstat", lstat_then_swap)
    outcome = run_briefly(lambda: Workspace(tree).read("notes.md"))
    assert isinstance(outcome, WorkspaceError) and "is a FIFO, not a regular file" in str(outcome)


def test_a_socket_is_refused(tree: Path) -> None:
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tree / "s.sock"))
        with pytest.raises(WorkspaceError, match="is a socket, not a regular file"):
            Workspace(tree).read("s.sock")


def test_a_huge_sparse_file_is_refused_by_its_size_before_reading(tree: Path) -> None:
    with (tree / "big.txt").open("wb") as file:
        file.truncate(2 << 30)
    workspace = Workspace(tree)
    tracemalloc.start()
    try:
        with pytest.raises(WorkspaceError, match="over the 1000000 byte limit"):
            workspace.read("big.txt")
        with pytest.raises(WorkspaceError, match="over the 1000000 byte limit"):
            workspace.search("x", "big.txt")
        assert workspace.search("x") == "no matches for 'x' under '.'"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000


def test_links_inside_are_followed_inside_and_never_out(tree: Path) -> None:
    (tree / "inner").symlink_to("d")
    (tree / "absolute").symlink_to(tree / "d")
    (tree / "away").symlink_to(tree.parent / "mull")
    (tree / "up").symlink_to("../mull/.env")
    (tree / "loop").symlink_to("loop")
    (tree / "to-git").symlink_to(".git/config")
    workspace = Workspace(tree)
    assert "decoy" in workspace.read("inner/.env") and "decoy" in workspace.read("absolute/.env")
    for path in ("away/.env", "up", "d/../../mull/.env"):
        with pytest.raises(PathRefused, match="outside the repository"):
            workspace.read(path)
    with pytest.raises(PathRefused, match="inside .git"):
        workspace.write("to-git", "x")
    with pytest.raises(WorkspaceError, match="more than 40 symbolic links"):
        workspace.read("loop")
    listing = workspace.list()
    assert f"away -> {tree.parent / 'mull'}" in listing and "away/.env" not in listing
    assert "from-the-workers-dotenv" not in workspace.search("SECRET")
