"""Changed files from both sources (git diff text, GitHub's files API) and the lines a review may comment on."""

from __future__ import annotations

import subprocess
from pathlib import Path

from worker.critique.diff import GIT_DIFF_ARGS, FileDiff, from_git_diff, from_github_files, right_side_lines

MODIFIED = """\
diff --git a/src/app.py b/src/app.py
index 3b18e51..8d3c4a1 100644
--- a/src/app.py
+++ b/src/app.py
@@ -1,5 +1,6 @@
 import os
-import sys
+import sys, json
+import re
\x20
 def main():
     pass
@@ -20,3 +21,2 @@ def tail():
 a = 1
--- this deleted line starts like a header
 b = 2
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def test_modified_file_hunks_and_counts() -> None:
    (file,) = from_git_diff(MODIFIED)
    assert (file.path, file.status, file.previous_path, file.binary) == ("src/app.py", "modified", None, False)
    assert (file.additions, file.deletions) == (2, 2)
    assert file.patch is not None and file.patch.startswith("@@ -1,5 +1,6 @@\n import os\n")
    assert "--- this deleted line" in file.patch  # a deleted line, not the start of another header


def test_right_side_lines_are_added_and_context_lines_only() -> None:
    (file,) = from_git_diff(MODIFIED)
    # hunk 1: new lines 1..6 (1 context, 2 added, 3 context); hunk 2: new lines 21..22 (context only)
    assert right_side_lines(file.patch) == {1, 2, 3, 4, 5, 6, 21, 22}


def test_right_side_lines_exclude_deleted_lines_and_the_no_newline_marker() -> None:
    patch = "@@ -10,4 +10,3 @@\n keep\n-gone one\n-gone two\n+new\n last\n\\ No newline at end of file\n"
    assert right_side_lines(patch) == {10, 11, 12}
    assert right_side_lines(None) == set() and right_side_lines("") == set()


def test_new_file_without_trailing_newline_and_a_form_feed_inside_a_line() -> None:
    text = ("diff --git a/n.txt b/n.txt\nnew file mode 100644\nindex 0000000..1111111\n--- /dev/null\n"
            "+++ b/n.txt\n@@ -0,0 +1,2 @@\n+page\x0cbreak\n+end\n\\ No newline at end of file\n")
    (file,) = from_git_diff(text)
    assert (file.status, file.additions, file.deletions) == ("added", 2, 0)
    assert right_side_lines(file.patch) == {1, 2}


def test_real_git_diff_with_rename_delete_binary_quoting_and_spaces(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "moved.py").write_text("".join(f"line {n}\n" for n in range(20)))
    (repo / "same.py").write_text("unchanged content\n")
    (repo / "gone.txt").write_text("bye\n")
    (repo / "logo.png").write_bytes(b"\x89PNG\x00\x01")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    git(repo, "mv", "moved.py", "renamed.py")
    (repo / "renamed.py").write_text("".join(f"line {n}\n" for n in range(20)).replace("line 5", "line five"))
    git(repo, "mv", "same.py", "with space.py")
    git(repo, "rm", "-q", "gone.txt")
    (repo / "logo.png").write_bytes(b"\x89PNG\x00\x02")
    (repo / "café.py").write_text("x = 1\n")
    git(repo, "add", "-A")
    files = {file.path: file for file in from_git_diff(git(repo, *GIT_DIFF_ARGS, "--cached"))}
    assert set(files) == {"renamed.py", "with space.py", "gone.txt", "logo.png", "café.py"}
    assert files["renamed.py"].status == "renamed" and files["renamed.py"].previous_path == "moved.py"
    assert (files["renamed.py"].additions, files["renamed.py"].deletions) == (1, 1)
    assert right_side_lines(files["renamed.py"].patch) == set(range(3, 10))
    assert files["with space.py"] == FileDiff(path="with space.py", status="renamed", patch="", additions=0,
                                             deletions=0, previous_path="same.py")
    assert files["gone.txt"].status == "removed" and files["gone.txt"].deletions == 1
    assert right_side_lines(files["gone.txt"].patch) == set()
    assert files["logo.png"].binary and files["logo.png"].patch is None
    assert files["café.py"].status == "added" and right_side_lines(files["café.py"].patch) == {1}


def test_mode_change_without_content_changes() -> None:
    text = "diff --git a/run.sh b/run.sh\nold mode 100644\nnew mode 100755\n"
    assert from_git_diff(text) == (FileDiff(path="run.sh", status="modified", patch="", additions=0, deletions=0),)


def test_quoted_header_paths_for_binary_files() -> None:
    text = ('diff --git "a/d\\303\\251j\\303\\240.bin" "b/d\\303\\251j\\303\\240.bin"\n'
            'new file mode 100644\nindex 0000000..1111111\nBinary files /dev/null and "b/d\\303\\251j\\303\\240.bin" '
            "differ\n")
    (file,) = from_git_diff(text)
    assert (file.path, file.status, file.binary, file.patch) == ("déjà.bin", "added", True, None)


def test_github_files_api_items() -> None:
    items = [
        {"filename": "src/app.py", "status": "modified", "additions": 1, "deletions": 1, "changes": 2,
         "patch": "@@ -1,2 +1,2 @@\n-a\n+b\n c"},
        {"filename": "img/logo.png", "status": "added", "additions": 0, "deletions": 0, "changes": 0},
        {"filename": "data/huge.sql", "status": "modified", "additions": 90000, "deletions": 0, "changes": 90000},
        {"filename": "new_name.py", "previous_filename": "old_name.py", "status": "renamed", "additions": 0,
         "deletions": 0, "changes": 0},
        {"filename": "old.txt", "status": "removed", "additions": 0, "deletions": 3, "changes": 3,
         "patch": "@@ -1,3 +0,0 @@\n-a\n-b\n-c"},
        {"filename": "copy.py", "previous_filename": "src/app.py", "status": "copied", "additions": 0,
         "deletions": 0, "changes": 0, "patch": ""},
    ]
    app, logo, huge, renamed, removed, copied = from_github_files(items)
    assert right_side_lines(app.patch) == {1, 2}
    assert logo.binary and logo.patch is None
    assert not huge.binary and huge.patch is None  # too large for GitHub to send: not binary
    assert (renamed.status, renamed.previous_path, renamed.patch, renamed.binary) == ("renamed", "old_name.py", "",
                                                                                      False)
    assert removed.status == "removed" and right_side_lines(removed.patch) == set()
    assert (copied.status, copied.previous_path) == ("added", "src/app.py")


def test_both_sources_agree_on_right_side_lines() -> None:
    (local,) = from_git_diff(MODIFIED)
    assert local.patch is not None
    (remote,) = from_github_files([{"filename": "src/app.py", "status": "modified", "additions": 2,
                                    "deletions": 2, "changes": 4, "patch": local.patch.rstrip("\n")}])
    assert right_side_lines(remote.patch) == right_side_lines(local.patch)
    assert (remote.additions, remote.deletions) == (local.additions, local.deletions)
