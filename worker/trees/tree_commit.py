"""Mull's commit of an agent's tree: the tree's files, taken into Mull's own git dir, and nothing else.

Git is never run in the agent's tree. Mull compares what it finds there (``worker/trees/tree_scan.py``) with the
run's base commit and writes only the difference through one ``git fast-import`` into a private ref of the
mirror, then reads the commit's SHA and drops the ref. Rules, like ``git add --all``:

- changed and new regular files and links are taken (links as links, mode 120000, the blob is the target);
  the executable bit is kept; paths of the base that are gone are deleted;
- gitlinks (submodules) of the base are kept as they are, whatever the agent left at their paths;
- new files that the ignore rules exclude are left out: the tree's ``.gitignore`` files (read by Mull,
  given to ``git check-ignore`` as a copy outside the tree, so git never opens a file of the tree) and the
  mirror's ``info/exclude`` (which holds Mull's own ``worker/trees/build_caches.py``); files the base already
  tracks stay even if a rule matches them;
- compiled Python the base tracks is kept exactly as in the base (neither changed nor deleted): any run of
  the code rewrites it, so what the tree holds there is never the agent's work;
- after a repository's setup (``worker/trees/setup_marks.py``), what setup created where the base tracks nothing is
  neither entered nor taken, and a tracked file still exactly as setup left it stays as the base has it;
- a file over GitHub's size limit fails the commit, naming the file: GitHub would refuse the push, and its
  size is all Mull looks at (a sparse file costs nothing to make and its full size to read).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from worker.trees.build_caches import is_bytecode
from worker.trees.git_process import git, git_bytes
from worker.trees.regular_file import TooLarge
from worker.trees.run_tree import RunTree
from worker.trees.setup_marks import SetupMarks, Tracked, mark
from worker.trees.tree_scan import GITLINK, Seen, blob_id, read_file, survey

RUN_REFS = "refs/mull/runs/"
MAX_FILE_BYTES = 100 * 1024 * 1024  # GitHub refuses a push that holds a larger file


class FileTooLarge(Exception):
    """A file of the tree is over MAX_FILE_BYTES; the message names it and the limit."""


@dataclass(frozen=True)
class Blob:
    mode: bytes
    oid: str


@dataclass(frozen=True)
class Change:
    path: bytes
    mode: bytes
    ref: str  # an object id the mirror has, or the fast-import mark (":3") of a blob in the stream


async def base_entries(mirror: Path, commit: str) -> dict[bytes, Blob]:
    """Every path of ``commit`` with its mode and object id (``git ls-tree -r``; gitlinks included)."""
    listing = await git_bytes("ls-tree", "-r", "-z", "--full-tree", commit, git_dir=mirror)
    entries = {}
    for record in listing.split(b"\0"):
        if record:
            info, path = record.split(b"\t", 1)
            mode, _kind, oid = info.split(b" ")
            entries[path] = Blob(mode=mode, oid=oid.decode())
    return entries


async def ignored(run: RunTree, ignore_files: Mapping[bytes, bytes], paths: Iterable[bytes]) -> set[bytes]:
    """Which of ``paths`` the ignore rules exclude, as ``git check-ignore`` decides on a copy of the rules."""
    query = b"".join(b"./" + path + b"\0" for path in paths)  # "./": a leading ":" is not pathspec magic
    if not query:
        return set()
    rules = run.run_dir / "ignore-rules"
    shutil.rmtree(rules, ignore_errors=True)
    rules.mkdir()
    for folder, text in ignore_files.items():
        target = rules / os.fsdecode(folder) if folder else rules
        target.mkdir(parents=True, exist_ok=True)
        (target / ".gitignore").write_bytes(text)
    out = await git_bytes("check-ignore", "--no-index", "-z", "--stdin", git_dir=run.mirror, work_tree=rules,
                          stdin=query, exit_codes=(0, 1))  # 1: none of them is ignored
    return {path.removeprefix(b"./") for path in out.split(b"\0") if path}


def stage(run: RunTree, kept: Mapping[bytes, Seen], base: Mapping[bytes, Blob],
          stream: BinaryIO, setup: SetupMarks | None = None) -> tuple[set[bytes], list[Change]]:
    """The paths taken, and those that differ from ``base``; blobs the mirror lacks go to ``stream``.

    A tracked path still exactly as ``setup`` left it counts as taken and unchanged: the base's copy stays."""
    algorithm = "sha256" if len(run.base_sha) == 64 else "sha1"
    known = {blob.oid for blob in base.values()}
    marks: dict[str, str] = {}
    taken: set[bytes] = set()
    changes = []
    for path, seen in kept.items():
        content = seen.link if seen.link is not None else _read(run, path)
        if content is None:
            continue  # no longer a regular file: not taken (a base file then counts as deleted)
        taken.add(path)
        oid = blob_id(content, algorithm)
        if base.get(path) == Blob(seen.mode, oid) or (setup and setup.as_setup_left(path, Tracked(seen.mode, oid))):
            continue
        ref = oid if oid in known else marks.get(oid, "")
        if not ref:
            ref = marks[oid] = f":{len(marks) + 1}"
            stream.write(b"blob\nmark %s\ndata %d\n" % (ref.encode(), len(content)))
            stream.write(content)
            stream.write(b"\n")
        changes.append(Change(path, seen.mode, ref))
    return taken, changes


def _read(run: RunTree, path: bytes) -> bytes | None:
    try:
        return read_file(run.tree, path, MAX_FILE_BYTES)
    except TooLarge as exc:
        raise FileTooLarge(f"{os.fsdecode(path)} is {exc.size} bytes, over GitHub's limit of 100 MB "
                           f"({MAX_FILE_BYTES} bytes) per file: delete it, or list it in .gitignore") from None


def quote(path: bytes) -> bytes:
    """A path in fast-import's C-style quoting, so any byte but NUL survives."""
    out = bytearray(b'"')
    for byte in path:
        if byte in (0x22, 0x5C):
            out += b"\\" + bytes([byte])
        elif byte < 0x20 or byte == 0x7F:
            out += b"\\%03o" % byte
        else:
            out.append(byte)
    return bytes(out + b'"')


def _person(name: str, email: str) -> bytes:
    clean = [value.translate({ord(c): None for c in "<>\n\r\0"}).strip() for value in (name, email)]
    return b"%s <%s> %d +0000" % (clean[0].encode(), clean[1].encode(), int(time.time()))


def write_commit(stream: BinaryIO, ref: str, base_sha: str, message: str, author: bytes,
                 deletes: Iterable[bytes], updates: Iterable[Change]) -> None:
    text = message.encode()
    stream.write(b"commit %s\nauthor %s\ncommitter %s\ndata %d\n" % (ref.encode(), author, author, len(text)))
    stream.write(text + b"\nfrom %s\n" % base_sha.encode())
    for path in deletes:  # deletions first, so a file may replace a directory and the other way round
        stream.write(b"D " + quote(path) + b"\n")
    for change in updates:
        stream.write(b"M %s %s " % (change.mode, change.ref.encode()) + quote(change.path) + b"\n")
    stream.write(b"\ndone\n")


async def mark_setup(run: RunTree) -> SetupMarks:
    """What the repository's setup left in the tree, noted right after it ran (``worker/trees/setup_marks.py``)."""
    base = await base_entries(run.mirror, run.base_sha)
    algorithm = "sha256" if len(run.base_sha) == 64 else "sha1"
    return await asyncio.to_thread(mark, run.tree, {path: (blob.mode, blob.oid) for path, blob in base.items()},
                                   algorithm)


async def commit(run: RunTree, message: str, author_name: str, author_email: str,
                 setup: SetupMarks | None = None) -> str | None:
    """Commit the tree's files on top of the run's base; the new commit's SHA, or None when nothing changed.

    ``setup``: what the repository's setup left (``mark_setup``), which is not the agent's work."""
    base = await base_entries(run.mirror, run.base_sha)
    gitlinks = frozenset(path for path, blob in base.items() if blob.mode == GITLINK)
    removed_by_setup = frozenset(path for path, left in (setup.changed if setup else {}).items()
                                 if left == Tracked(None, None))
    held = frozenset(path for path in base if is_bytecode(path))  # stays as the base has it
    found = await asyncio.to_thread(survey, run.tree, gitlinks | (setup.roots if setup else frozenset()))
    left_out = await ignored(run, found.ignore_files, (path for path in found.entries if path not in base))
    kept = {path: seen for path, seen in found.entries.items() if path not in left_out and path not in held}
    stream_path = run.run_dir / "commit.fast-import"
    with stream_path.open("wb") as stream:
        taken, updates = await asyncio.to_thread(stage, run, kept, base, stream, setup)
        deletes = [path for path, blob in base.items()
                   if blob.mode != GITLINK and path not in taken and path not in held and path not in removed_by_setup]
        if not updates and not deletes:
            stream_path.unlink()
            return None
        ref = RUN_REFS + uuid.uuid4().hex
        write_commit(stream, ref, run.base_sha, message, _person(author_name, author_email), deletes, updates)
    try:
        await git("fast-import", "--quiet", "--done", git_dir=run.mirror, stdin=stream_path)
        sha = (await git("rev-parse", "--verify", f"{ref}^{{commit}}", git_dir=run.mirror)).strip()
    finally:
        stream_path.unlink(missing_ok=True)
        await git("update-ref", "-d", ref, git_dir=run.mirror, check=False)
    return sha
