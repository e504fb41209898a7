"""Merging or rebasing a branch onto its moved base inside a bare repository, with real git: clean updates
keep both sides' work, conflicts are named and left as markers for a revision, and doing it twice gives the
same commit."""

from __future__ import annotations

import asyncio
from pathlib import Path

from doubles import bare_repo

from worker.trees import base_update

NAME, EMAIL = "mull[bot]", "1+mull[bot]@users.noreply.github.com"


def repo_with_moved_base(tmp_path: Path, base_change: dict[str, str | None]) -> tuple[Path, str, str]:
    """main, a branch with two commits on it, and main moved on by ``base_change``: (repo, head, base)."""
    repo = tmp_path / "r.git"
    bare_repo.init_bare(repo, {"a.py": "one\ntwo\nthree\n", "b.py": "b\n"})
    bare_repo.commit_files(repo, "topic", {"a.py": "one\nTWO\nthree\n"}, "first", start="main")
    head = bare_repo.commit_files(repo, "topic", {"new.py": "n\n"}, "second")
    base = bare_repo.commit_files(repo, "main", base_change, "base moved")
    return repo, head, base


def files(repo: Path, sha: str) -> dict[str, str]:
    return bare_repo.files_at(repo, sha)


def test_a_clean_merge_keeps_both_sides_and_is_the_same_commit_twice(tmp_path: Path) -> None:
    repo, head, base = repo_with_moved_base(tmp_path, {"b.py": "B\n"})
    assert not asyncio.run(base_update.contains(repo, head, base))
    done = asyncio.run(base_update.update(repo, "merge", head, base, "main", NAME, EMAIL))
    again = asyncio.run(base_update.update(repo, "merge", head, base, "main", NAME, EMAIL))
    assert done == again and done.conflicts == ()
    assert files(repo, done.sha) == {"a.py": "one\nTWO\nthree\n", "b.py": "B\n", "new.py": "n\n"}
    assert bare_repo.git(repo, "show", "-s", "--format=%P", done.sha).split() == [head, base]
    assert asyncio.run(base_update.contains(repo, done.sha, base))


def test_a_clean_rebase_replays_each_commit_on_the_base(tmp_path: Path) -> None:
    repo, head, base = repo_with_moved_base(tmp_path, {"b.py": "B\n"})
    done = asyncio.run(base_update.update(repo, "rebase", head, base, "main", NAME, EMAIL))
    assert done.conflicts == () and done == asyncio.run(base_update.update(repo, "rebase", head, base, "main", NAME,
                                                                           EMAIL))
    assert files(repo, done.sha) == {"a.py": "one\nTWO\nthree\n", "b.py": "B\n", "new.py": "n\n"}
    subjects = bare_repo.git(repo, "log", "--format=%s", f"{base}..{done.sha}").split("\n")[:2]
    assert subjects == ["second", "first"]
    assert bare_repo.git(repo, "rev-list", "--merges", f"{base}..{done.sha}").strip() == ""
    assert bare_repo.git(repo, "show", "-s", "--format=%P", f"{done.sha}~1").split() == [base]


def test_a_conflict_is_named_and_left_as_markers_for_the_revision(tmp_path: Path) -> None:
    repo, head, base = repo_with_moved_base(tmp_path, {"a.py": "one\nzwei\nthree\n"})
    for mode in ("merge", "rebase"):
        done = asyncio.run(base_update.update(repo, mode, head, base, "main", NAME, EMAIL))  # type: ignore[arg-type]
        assert done.conflicts == ("a.py",), mode
        assert "<<<<<<< " in files(repo, done.sha)["a.py"] and files(repo, done.sha)["new.py"] == "n\n"
        assert asyncio.run(base_update.markers_left(repo, done.sha, done.conflicts)) == ("a.py",)
        assert asyncio.run(base_update.contains(repo, done.sha, base))
    # A resolution on top has no markers left.
    fixed = bare_repo.commit_files(repo, "resolved", {"a.py": "one\nTWO zwei\nthree\n"}, "fix", start=done.sha)
    assert asyncio.run(base_update.markers_left(repo, fixed, ("a.py",))) == ()


def test_hostile_file_names_in_a_conflict_are_paths_never_options(tmp_path: Path) -> None:
    repo = tmp_path / "r.git"
    odd = ["-rf", ":(exclude)x", "--output=/tmp/owned"]
    bare_repo.init_bare(repo, {name: "x\n" for name in odd})
    head = bare_repo.commit_files(repo, "topic", {name: "mine\n" for name in odd}, "mine", start="main")
    base = bare_repo.commit_files(repo, "main", {name: "theirs\n" for name in odd}, "theirs")
    done = asyncio.run(base_update.update(repo, "merge", head, base, "main", NAME, EMAIL))
    assert sorted(done.conflicts) == sorted(odd)
    assert sorted(asyncio.run(base_update.markers_left(repo, done.sha, done.conflicts))) == sorted(odd)
    assert not Path("/tmp/owned").exists()
