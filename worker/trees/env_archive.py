"""A prepared environment as one tar file: written from a run's tree after setup, restored into a later run's.

Everything in it was written by a repository's setup, which is as hostile as the agent; so both directions touch
the tree only through directory descriptors opened with ``O_NOFOLLOW``, relative to the tree's own:

- ``capture`` stores directories, regular files and symbolic links (as links: their targets are never read) under
  the roots setup created (``worker/trees/setup_marks.py``); FIFOs, sockets and devices are left out, and so are
  ``__pycache__`` folders (Python compiles again what is imported; they are half the files of a virtualenv);
- ``restore`` recreates only what lies under the roots the archive names, each of which must be missing from the
  new tree, and whose parent must be a real directory there. Files are created with ``O_EXCL | O_NOFOLLOW``
  beneath directories it created itself, so a link in the archive (``.venv/x -> /etc``) is recreated as a link and
  never written through; names with ``..``, absolute names, git metadata, hard links and special files (FIFOs,
  devices) are skipped; set-id bits are dropped. On any error what it made is removed and it says so (False),
  and the run prepares its environment the ordinary way.

Nothing is ever run: setup's files go back into a tree that only sandboxed commands execute.

Absolute paths: a virtualenv's scripts start ``#!<tree>/.venv/bin/python``, and editable installs write the
tree's path into ``.pth`` files. Each run's tree has its own path, so ``restore`` rewrites the first run's tree
path to the new one in text files (no NUL byte) up to ``REWRITE_LIMIT`` bytes, and in link targets.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tarfile
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

from worker.trees.run_tree import remove_run_dir
from worker.trees.tree_scan import is_git_metadata

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # NONBLOCK: a FIFO never hangs us
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
REWRITE_LIMIT = 4 * 1024 * 1024
_CHUNK = 1024 * 1024
_TREE = "mull.tree"  # pax global header: the tree the environment was prepared in
_ROOTS = "mull.roots"  # pax global header: JSON list of the roots, slash-separated, relative to the tree
_ENCODING = "utf-8"
_BYTECODE = b"__pycache__"  # Python writes it again on import: half a virtualenv's files, never kept
_OPEN_DIRS = 64  # folder descriptors a restore keeps open at once
_ERRORS = "surrogateescape"  # any byte string a file name can be survives the round trip


class TooLarge(Exception):
    """The environment outgrew what the cache may hold."""


@dataclass(frozen=True)
class Restored:
    """What ``restore`` did: ``ok`` False when nothing was restored, ``why`` then says why."""

    ok: bool
    why: str = ""
    files: int = 0
    skipped: int = 0  # members left out: special files, hard links, names outside the roots


def capture(tree: Path, roots: frozenset[bytes], out: IO[bytes], limit: int) -> int:
    """Write the files under ``roots`` of ``tree`` as a tar to ``out``; its size. TooLarge past ``limit`` bytes."""
    tree_path = os.fsdecode(os.path.realpath(tree))
    headers = {_TREE: tree_path, _ROOTS: json.dumps(sorted(os.fsdecode(root) for root in roots))}
    counted = _Counted(out, limit)
    tree_fd = os.open(tree, _DIR_FLAGS)
    try:
        with tarfile.open(fileobj=cast(IO[bytes], counted), mode="w|", format=tarfile.PAX_FORMAT, pax_headers=headers,
                          encoding=_ENCODING, errors=_ERRORS) as tar:
            for root in sorted(roots):
                parent, name = _open_parent(tree_fd, root)
                try:
                    _add(tar, parent, name, os.fsdecode(root))
                finally:
                    os.close(parent)
    finally:
        os.close(tree_fd)
    return counted.size


def _add(tar: tarfile.TarFile, dir_fd: int, name: bytes, member: str) -> None:
    """Add ``name`` (in ``dir_fd``) as ``member``, and everything beneath it when it is a directory."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    entry = tarfile.TarInfo(member)
    entry.mode, entry.mtime = stat.S_IMODE(info.st_mode) & 0o777, int(info.st_mtime)
    if stat.S_ISLNK(info.st_mode):
        entry.type, entry.linkname = tarfile.SYMTYPE, os.fsdecode(os.readlink(name, dir_fd=dir_fd))
        tar.addfile(entry)
    elif stat.S_ISDIR(info.st_mode):
        try:
            child = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        except OSError:
            return  # replaced or unreadable: left out
        try:
            entry.type = tarfile.DIRTYPE
            tar.addfile(entry)
            with os.scandir(child) as listing:
                found = sorted((os.fsencode(item.name), item.is_dir(follow_symlinks=False)) for item in listing)
            # A folder's files before its folders: a restore then writes each folder's files in one go.
            for inner, is_dir in sorted(found, key=lambda item: item[1]):
                if is_dir and inner == _BYTECODE:
                    continue
                _add(tar, child, inner, f"{member}/{os.fsdecode(inner)}")
        finally:
            os.close(child)
    elif stat.S_ISREG(info.st_mode):
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
        except OSError:
            return
        with os.fdopen(fd, "rb") as data:
            now = os.fstat(data.fileno())
            if not stat.S_ISREG(now.st_mode):
                return  # swapped for something else since the lstat
            entry.size = now.st_size
            tar.addfile(entry, data)
    # FIFOs, sockets, devices: never stored


class _Counted:
    """A write-only stream that counts, and refuses to grow past ``limit``."""

    def __init__(self, out: IO[bytes], limit: int) -> None:
        self._out, self._limit, self.size = out, limit, 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > self._limit:
            raise TooLarge(f"the environment is larger than the cache's {self._limit} bytes")
        return self._out.write(data)

    def flush(self) -> None:
        self._out.flush()


def restore(archive: IO[bytes], tree: Path) -> Restored:
    """Recreate the environment of ``archive`` in ``tree``; all or nothing."""
    try:
        tar = tarfile.open(fileobj=archive, mode="r|", encoding=_ENCODING, errors=_ERRORS)
    except (tarfile.TarError, OSError) as exc:
        return Restored(False, f"unreadable archive: {exc}")
    made: list[bytes] = []
    tree_fd = os.open(tree, _DIR_FLAGS)
    try:
        with tar:
            old_tree = os.fsencode(tar.pax_headers.get(_TREE, "")) if tar.pax_headers else b""
            roots = _roots(tar)
            if not roots:
                return Restored(False, "the archive names no roots")
            why = _conflict(tree_fd, roots)
            if why:
                return Restored(False, why)
            writer = _Writer(tree_fd, old_tree, os.fsencode(os.path.realpath(tree)), roots, made)
            try:
                for member in tar:
                    writer.take(tar, member)
                writer.finish()
            finally:
                writer.close()
            return Restored(True, files=writer.files, skipped=writer.skipped)
    except (OSError, tarfile.TarError, ValueError, UnicodeError, OverflowError, RecursionError) as exc:
        # whatever an archive holds, a failed restore only means setup runs for real
        _remove(tree, made)
        return Restored(False, f"restore failed: {exc}")
    finally:
        os.close(tree_fd)


def _roots(tar: tarfile.TarFile) -> list[bytes]:
    """The archive's roots that are sound relative paths; an archive with any other is refused (empty)."""
    try:
        listed = json.loads((tar.pax_headers or {}).get(_ROOTS, "[]"))
    except ValueError:
        return []
    if not isinstance(listed, list) or not all(isinstance(root, str) for root in listed):
        return []
    roots = [os.fsencode(root) for root in listed]
    return roots if all(_sound(root) for root in roots) else []


def _sound(path: bytes) -> bool:
    parts = path.split(b"/")
    return bool(path) and b"\0" not in path and all(
        part not in (b"", b".", b"..") and not is_git_metadata(part) for part in parts)


def _conflict(tree_fd: int, roots: list[bytes]) -> str:
    """Why the roots cannot go into this tree ("" when they can): a root exists, or its parent is no directory."""
    for root in roots:
        try:
            parent, name = _open_parent(tree_fd, root)
        except OSError:
            return f"{os.fsdecode(root)}: its folder is missing from this commit or is not a directory"
        try:
            os.stat(name, dir_fd=parent, follow_symlinks=False)
            return f"{os.fsdecode(root)} exists in this commit's tree"
        except FileNotFoundError:
            pass
        finally:
            os.close(parent)
    return ""


def _open_parent(tree_fd: int, path: bytes) -> tuple[int, bytes]:
    """A descriptor of ``path``'s folder, reached without following any link, and ``path``'s last part."""
    *folders, name = path.split(b"/")
    fd = os.dup(tree_fd)
    try:
        for folder in folders:
            inner = os.open(folder, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd, name


class _Writer:
    """Creates the members one by one; remembers directory modes to set once their contents are in."""

    def __init__(self, tree_fd: int, old_tree: bytes, new_tree: bytes, roots: list[bytes], made: list[bytes]):
        self._tree_fd, self._old, self._new = tree_fd, old_tree, new_tree
        self._roots = roots
        self._made = made
        self._dirs: set[bytes] = set()  # directories this restore created: the only ones it writes into
        self._modes: list[tuple[bytes, int]] = []
        self._open: OrderedDict[bytes, int] = OrderedDict()  # folders opened lately, most recent last
        self.files = 0
        self.skipped = 0

    def take(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        path = os.fsencode(member.name)
        root = next((root for root in self._roots if path == root or path.startswith(root + b"/")), None)
        if root is None or not _sound(path) or not (member.isdir() or member.isreg() or member.issym()):
            self.skipped += 1  # outside the roots, a bad name, a hard link, a FIFO, a device
            return
        folder, _, name = path.rpartition(b"/")
        if path != root and folder not in self._dirs:
            self.skipped += 1  # its directory was not restored (or was a link): nothing is written through it
            return
        parent = self._parent(folder)
        if path == root:
            self._made.append(root)
        if member.isdir():
            os.mkdir(name, 0o700, dir_fd=parent)
            self._dirs.add(path)
            self._modes.append((path, member.mode & 0o777))
        elif member.issym():
            target = os.fsencode(member.linkname)
            os.symlink(target.replace(self._old, self._new) if self._old else target, name, dir_fd=parent)
        else:
            self._write(parent, name, tar, member)
            self.files += 1

    def _parent(self, folder: bytes) -> int:
        """A descriptor of ``folder`` (the tree itself for b""), opened from the nearest one already open."""
        if folder in self._open:
            self._open.move_to_end(folder)
            return self._open[folder]
        base, rest = folder, []
        while base and base not in self._open:
            base, _, last = base.rpartition(b"/")
            rest.append(last)
        fd = os.dup(self._open[base] if base else self._tree_fd)
        try:
            for part in reversed(rest):
                inner = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = inner
        except BaseException:
            os.close(fd)
            raise
        self._open[folder] = fd
        if len(self._open) > _OPEN_DIRS:
            os.close(self._open.popitem(last=False)[1])
        return fd

    def _write(self, parent: int, name: bytes, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        source = tar.extractfile(member)
        if source is None:
            raise ValueError(f"{member.name}: no data")
        if member.size > REWRITE_LIMIT:
            _create(parent, name, iter(lambda: source.read(_CHUNK), b""), member.mode, member.mtime)
            return
        data = source.read()
        if self._old and b"\0" not in data:
            data = data.replace(self._old, self._new)
        _create(parent, name, (data,), member.mode, member.mtime)

    def close(self) -> None:
        while self._open:
            os.close(self._open.popitem()[1])

    def finish(self) -> None:
        """Give the restored folders their modes, innermost first (a read-only one is filled by then)."""
        try:
            for path, mode in reversed(self._modes):
                folder, _, name = path.rpartition(b"/")
                _chmod_dir(self._parent(folder), name, mode)
        finally:
            self.close()


def _create(parent: int, name: bytes, chunks: Iterable[bytes], mode: int, mtime: float) -> None:
    """A new file ``name`` in the folder ``parent`` holding ``chunks``; never through a link, never over a file."""
    fd = os.open(name, _CREATE_FLAGS, 0o600, dir_fd=parent)
    try:
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
        os.fchmod(fd, mode & 0o777)  # no set-id or sticky bit
        os.utime(fd, (mtime, mtime))  # tools that compare mtimes (make, bytecode) see the first run's
    finally:
        os.close(fd)


def _chmod_dir(parent: int, name: bytes, mode: int) -> None:
    """Give a restored directory its mode, through a descriptor (``chmod`` by name would follow a link)."""
    fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
    try:
        os.fchmod(fd, mode | 0o700)  # the owner keeps rwx, so Mull can always remove the run's tree
    finally:
        os.close(fd)


def _remove(tree: Path, made: list[bytes]) -> None:
    """Take back a failed restore: remove each root it created (a link itself, never what it points at)."""
    for root in made:
        path = tree / os.fsdecode(root)
        with contextlib.suppress(OSError):
            if path.is_symlink() or not path.is_dir():
                path.unlink()
            else:
                remove_run_dir(path)
