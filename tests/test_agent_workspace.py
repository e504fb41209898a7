"""The builtin agent's file tools stay inside the worktree and explain their refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.agent.workspace import EditMismatch, PathRefused, Workspace, WorkspaceError


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\n")
    (root / "src" / "app.py").write_text("def f():\n    return 1\n\ndef g():\n    return 1\n")
    (root / "README.md").write_text("hello\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("secret\n")
    return root


ESCAPES = ["../outside/secret.txt", "src/../../outside/secret.txt", "/etc/passwd", ".."]


@pytest.mark.parametrize("path", ESCAPES)
def test_paths_outside_the_repository_are_refused(repo: Path, path: str) -> None:
    with pytest.raises(PathRefused, match="is outside the repository; use a path relative to the repository"):
        Workspace(repo).resolve(path)


def test_symlink_to_a_file_outside_is_refused_for_reading_and_writing(repo: Path) -> None:
    (repo / "passwd").symlink_to("/etc/passwd")
    workspace = Workspace(repo)
    with pytest.raises(PathRefused):
        workspace.read("passwd")
    with pytest.raises(PathRefused):
        workspace.write("passwd", "root::0:0::/:/bin/sh\n")
    assert "root::0:0" not in Path("/etc/passwd").read_text()


def test_symlinked_directory_escape_is_refused(repo: Path) -> None:
    (repo / "escape").symlink_to(repo.parent / "outside")
    workspace = Workspace(repo)
    with pytest.raises(PathRefused):
        workspace.write("escape/new.txt", "x")
    with pytest.raises(PathRefused):
        workspace.read("escape/secret.txt")
    assert not (repo.parent / "outside" / "new.txt").exists()


@pytest.mark.parametrize("path", [".git/config", ".git", "src/../.git/config"])
def test_git_metadata_is_refused(repo: Path, path: str) -> None:
    with pytest.raises(PathRefused, match=r"inside \.git"):
        Workspace(repo).write(path, "[core]\n\thooksPath = /tmp\n")
    assert (repo / ".git" / "config").read_text() == "[core]\n"


def test_absolute_path_inside_and_symlink_inside_are_fine(repo: Path) -> None:
    (repo / "link.md").symlink_to("README.md")
    workspace = Workspace(repo)
    assert workspace.resolve(str(repo / "README.md")) == (repo / "README.md").resolve()
    assert "hello" in workspace.read("link.md")


def test_edit_exactly_one_match(repo: Path) -> None:
    workspace = Workspace(repo)
    workspace.edit("src/app.py", "def g():\n    return 1", "def g():\n    return 2")
    assert (repo / "src" / "app.py").read_text() == "def f():\n    return 1\n\ndef g():\n    return 2\n"


def test_edit_zero_matches_says_so(repo: Path) -> None:
    with pytest.raises(EditMismatch, match="found 0 times.*include more context"):
        Workspace(repo).edit("src/app.py", "return 3", "return 4")


def test_edit_two_matches_asks_for_context(repo: Path) -> None:
    with pytest.raises(EditMismatch, match="found 2 times.*more surrounding context"):
        Workspace(repo).edit("src/app.py", "return 1", "return 2")
    assert "return 2" not in (repo / "src" / "app.py").read_text()


def test_edit_keeps_crlf_line_endings(repo: Path) -> None:
    (repo / "win.txt").write_bytes(b"a\r\nb\r\n")
    Workspace(repo).edit("win.txt", "b", "c")
    assert (repo / "win.txt").read_bytes() == b"a\r\nc\r\n"


def test_write_creates_parent_directories(repo: Path) -> None:
    assert Workspace(repo).write("docs/guide/intro.md", "# Intro\n").startswith("created")
    assert (repo / "docs" / "guide" / "intro.md").read_text() == "# Intro\n"


def test_list_skips_git_and_marks_directories(repo: Path) -> None:
    listing = Workspace(repo).list().splitlines()
    assert "src/" in listing and "src/app.py" in listing and "README.md" in listing
    assert not any(".git" in line for line in listing)
    many = Workspace(repo)
    for i in range(20):
        (repo / f"f{i:02}.txt").write_text("")
    assert "[listing truncated at 5 entries" in many.list(max_entries=5)


def test_read_numbers_lines_and_notes_the_rest(repo: Path) -> None:
    (repo / "long.txt").write_text("".join(f"line {i}\n" for i in range(1, 11)))
    text = Workspace(repo).read("long.txt", offset_line=3, limit_lines=2)
    assert text.splitlines()[0].split() == ["3", "line", "3"]
    assert "offset=5" in text


def test_read_refuses_binary_and_huge_files(repo: Path) -> None:
    (repo / "blob.bin").write_bytes(b"\x00\x01\x02" * 10)
    (repo / "huge.txt").write_bytes(b"a" * 1_000_001)
    workspace = Workspace(repo)
    with pytest.raises(WorkspaceError, match="binary"):
        workspace.read("blob.bin")
    with pytest.raises(WorkspaceError, match="over the 1000000 byte limit"):
        workspace.read("huge.txt")


def test_search_finds_lines_and_rejects_bad_regex(repo: Path) -> None:
    (repo / "blob.bin").write_bytes(b"\x00return 1")
    workspace = Workspace(repo)
    hits = workspace.search(r"return \d").splitlines()
    assert hits == ["src/app.py:2: return 1", "src/app.py:5: return 1"]
    with pytest.raises(WorkspaceError, match="invalid regular expression"):
        workspace.search("(unclosed")
