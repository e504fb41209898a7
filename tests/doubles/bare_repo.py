"""Real bare git repositories behind the GitHub double: created, seeded and read with git plumbing.

Everything goes through the ``git`` binary so what tests read is exactly what a clone would see.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

ZERO_SHA = "0" * 40

# Deterministic git: no user or system config leaks into the double's repositories.
GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_AUTHOR_NAME": "Test Seeder",
    "GIT_AUTHOR_EMAIL": "seeder@example.com",
    "GIT_COMMITTER_NAME": "Test Seeder",
    "GIT_COMMITTER_EMAIL": "seeder@example.com",
}


def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_ENV)
    env.update(extra or {})
    return env


def git(repo: Path, *args: str, input: bytes | None = None, env: dict[str, str] | None = None,
        check: bool = True) -> str:
    """Run git against a bare repository and return stdout as text."""
    proc = subprocess.run(["git", "--git-dir", str(repo), *args], input=input, capture_output=True,
                          env=git_env(env))
    if check and proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout.decode(errors="replace")


def init_bare(repo: Path, files: Mapping[str, str | bytes], branch: str = "main",
              message: str = "Initial commit") -> str:
    """Create a bare repo that accepts pushes over HTTP, seeded with one commit of ``files``."""
    repo.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "--bare", "-q", "-b", branch, str(repo)], check=True, env=git_env())
    git(repo, "config", "http.receivepack", "true")
    git(repo, "config", "uploadpack.allowAnySHA1InWant", "true")
    return commit_files(repo, branch, files, message)


def commit_files(repo: Path, branch: str, files: Mapping[str, str | bytes | None], message: str,
                 author: tuple[str, str] | None = None, start: str | None = None) -> str:
    """Commit ``files`` (None deletes a path) on top of ``branch``; return the sha. A missing branch starts
    at ``start`` (a ref), or with no history at all when that is None."""
    parent = rev_parse(repo, branch) or (rev_parse(repo, start) if start else None)
    with tempfile.TemporaryDirectory() as tmp:
        index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        if parent:
            git(repo, "read-tree", parent, env=index)
        for path, content in files.items():
            if content is None:  # mode 0 removes the entry; --force-remove would want a work tree
                git(repo, "update-index", "--index-info", input=f"0 {ZERO_SHA}\t{path}\n".encode(), env=index)
                continue
            data = content.encode() if isinstance(content, str) else content
            blob = git(repo, "hash-object", "-w", "--stdin", input=data).strip()
            git(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=index)
        tree = git(repo, "write-tree", env=index).strip()
    sha = write_commit(repo, tree, [parent] if parent else [], message, author)
    git(repo, "update-ref", f"refs/heads/{branch}", sha)
    return sha


def write_commit(repo: Path, tree: str, parents: list[str], message: str,
                 author: tuple[str, str] | None = None) -> str:
    """A commit object of ``tree`` with ``parents``; no ref moves."""
    who = {}
    if author:
        who = {"GIT_AUTHOR_NAME": author[0], "GIT_AUTHOR_EMAIL": author[1],
               "GIT_COMMITTER_NAME": author[0], "GIT_COMMITTER_EMAIL": author[1]}
    args = [arg for parent in parents for arg in ("-p", parent)]
    return git(repo, "commit-tree", tree, *args, "-m", message, env=who).strip()


def merge_base(repo: Path, a: str, b: str) -> str | None:
    return git(repo, "merge-base", a, b, check=False).strip() or None


def merge_tree(repo: Path, base: str, head: str) -> str | None:
    """The tree of merging ``head`` into ``base`` (git's ort merge), or None on conflicts."""
    proc = subprocess.run(["git", "--git-dir", str(repo), "merge-tree", "--write-tree", "--no-messages", base,
                           head], capture_output=True, env=git_env())
    return proc.stdout.decode().splitlines()[0].strip() if proc.returncode == 0 else None


def rev_parse(repo: Path, ref: str) -> str | None:
    """The commit a branch, tag or sha names, or None."""
    candidates = [ref] if ref.startswith("refs/") or len(ref) == 40 else [f"refs/heads/{ref}", ref]
    for candidate in candidates:
        if candidate.startswith("refs/heads/") and (sha := branch_head(repo, candidate)):
            return sha
        out = git(repo, "rev-parse", "--verify", "-q", f"{candidate}^{{commit}}", check=False).strip()
        if out:
            return out
    return None


def branch_head(repo: Path, ref: str) -> str | None:
    """The commit of branch ``ref`` (``refs/heads/...``) read from the ref files as git itself does (loose ref,
    else packed-refs), or None: the double answers most API calls with a branch's head, and a git process for
    each was most of a long test's time. git writes both files by rename, so a read sees one whole version."""
    try:
        text = (repo / ref).read_text().strip()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        text = ""
    if text:
        return text if len(text) == 40 and not text.startswith("ref:") else None
    try:
        packed = (repo / "packed-refs").read_text()
    except FileNotFoundError:
        return None
    for line in packed.splitlines():
        sha, _, name = line.partition(" ")
        if name == ref and len(sha) == 40:
            return sha
    return None


def refs(repo: Path) -> dict[str, str]:
    """Every ref and the object it points at."""
    out = git(repo, "for-each-ref", "--format=%(refname) %(objectname)")
    return dict(line.split(" ", 1) for line in out.splitlines() if line)


def branches(repo: Path) -> list[str]:
    return sorted(r.removeprefix("refs/heads/") for r in refs(repo) if r.startswith("refs/heads/"))


def is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    proc = subprocess.run(["git", "--git-dir", str(repo), "merge-base", "--is-ancestor", ancestor,
                           descendant], capture_output=True, env=git_env())
    return proc.returncode == 0


def object_at(repo: Path, ref: str, path: str) -> tuple[str, str] | None:
    """(type, sha) of ``path`` at ``ref`` ('blob' or 'tree'), or None when it does not exist."""
    sha = rev_parse(repo, ref)
    if sha is None:
        return None
    spec = f"{sha}:{path.strip('/')}" if path.strip("/") else f"{sha}^{{tree}}"
    obj = git(repo, "rev-parse", "--verify", "-q", spec, check=False).strip()
    if not obj:
        return None
    return git(repo, "cat-file", "-t", obj).strip(), obj


def read_blob(repo: Path, sha: str) -> bytes:
    proc = subprocess.run(["git", "--git-dir", str(repo), "cat-file", "blob", sha], capture_output=True,
                          check=True, env=git_env())
    return proc.stdout


def list_tree(repo: Path, ref: str, path: str = "") -> list[tuple[str, str, str, int]]:
    """Entries of a directory at ``ref``: (type, sha, path, size)."""
    sha = rev_parse(repo, ref)
    if sha is None:
        raise KeyError(f"no ref {ref!r} in {repo}")
    spec = f"{sha}:{path.strip('/')}" if path.strip("/") else sha
    out = git(repo, "ls-tree", "-l", spec)
    entries = []
    prefix = f"{path.strip('/')}/" if path.strip("/") else ""
    for line in out.splitlines():
        meta, name = line.split("\t", 1)
        _mode, kind, obj, size = meta.split()
        entries.append((kind, obj, prefix + name, int(size) if size != "-" else 0))
    return entries


def files_at(repo: Path, ref: str) -> dict[str, str]:
    """Every file at ``ref`` as {path: text}."""
    sha = rev_parse(repo, ref)
    if sha is None:
        raise KeyError(f"no ref {ref!r} in {repo}")
    out = git(repo, "ls-tree", "-r", "-z", sha)
    files = {}
    for entry in filter(None, out.split("\0")):
        meta, path = entry.split("\t", 1)
        files[path] = read_blob(repo, meta.split()[2]).decode(errors="replace")
    return files


def commits(repo: Path, ref: str, limit: int = 100, since: str | None = None) -> list[dict[str, str]]:
    """Newest-first commits of ``ref`` (only those after ``since`` when given)."""
    sha = rev_parse(repo, ref)
    if sha is None:
        raise KeyError(f"no ref {ref!r} in {repo}")
    spec = f"{since}..{sha}" if since and since != ZERO_SHA else sha
    out = git(repo, "log", f"-n{limit}", "--format=%H%x00%T%x00%an%x00%ae%x00%aI%x00%B%x1e", spec)
    result = []
    for record in filter(None, (r.strip("\n") for r in out.split("\x1e"))):
        sha_, tree, name, email, date, body = record.split("\x00", 5)
        result.append({"sha": sha_, "tree": tree, "author_name": name, "author_email": email, "date": date,
                       "message": body.strip()})
    return result
