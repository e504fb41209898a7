"""The builtin agent's file operations, fenced to the worktree.

Paths come from a model that read untrusted issue text, and the tree is written by commands that may still
be running, while these operations run in the worker, beside Mull's secrets. So nothing here opens a path
by name: every path is walked from a descriptor of the root (``worker/agent/tree_fd.py``), links are
followed only inside the tree, ``.git`` is refused, and files are opened without following a link or
blocking on a FIFO, and sized before they are read (``worker/trees/regular_file.py``). Errors are worded for the
model: it reads them as tool results and should be able to correct itself.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from worker.agent.search_pattern import BadPattern, LinePattern, TooSlow
from worker.agent.tree_fd import DIR_FLAGS, MAX_LINKS, InGit, LinkLoop, Outside, Spot, locate, walk
from worker.trees.regular_file import NotRegular, TooLarge, kind_of, opened, read_regular

MAX_FILE_BYTES = 1_000_000
SEARCH_SECONDS = 10.0  # one search's budget, walking and matching together
_BINARY_PROBE = 8192
_MAX_LINE_CHARS = 2000
_NOT_EXPANDED = frozenset({"node_modules", ".venv", "venv", "__pycache__", ".mypy_cache", ".pytest_cache",
                           ".ruff_cache", ".tox", "target", "dist", "build"})


class WorkspaceError(Exception):
    """A file operation the model asked for cannot be done; the message tells it what to do instead."""


class PathRefused(WorkspaceError):
    """The path is outside the repository or inside ``.git``."""


class EditMismatch(WorkspaceError):
    """``old`` did not occur exactly once."""


class Workspace:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def resolve(self, path: str) -> Path:
        """The real path under the root (links inside the tree followed), or PathRefused."""
        with self._spot(path) as spot:
            return self.root.joinpath(*spot.parts)

    def exists(self, path: str) -> bool:
        """Whether anything is at ``path`` (a missing directory on the way: no); PathRefused as everywhere."""
        try:
            with self._spot(path) as spot:
                return spot.mode is not None
        except PathRefused:
            raise
        except WorkspaceError:
            return False

    def relative(self, real: Path) -> str:
        return real.relative_to(self.root).as_posix() or "."

    def list(self, path: str = ".", max_entries: int = 500) -> str:
        """A tree listing; directories end with ``/``, links show where they point."""
        entries: list[str] = []
        with self._spot(path) as spot, self._directory(spot, path, "use read_file to read a file") as top:
            for entry in walk(top, spot.parts, lambda folder: folder.name not in _NOT_EXPANDED):
                if stat.S_ISDIR(entry.mode):
                    line = entry.relative + ("/ (not expanded)" if entry.name in _NOT_EXPANDED else "/")
                elif stat.S_ISLNK(entry.mode):
                    line = f"{entry.relative} -> {os.readlink(entry.name, dir_fd=entry.parent)}"
                else:
                    line = entry.relative
                entries.append(line)
                if len(entries) > max_entries:
                    break
        if not entries:
            return f"'{path}' is empty"
        entries.sort()
        if len(entries) > max_entries:
            return "\n".join(entries[:max_entries]) + (
                f"\n[listing truncated at {max_entries} entries; list a subdirectory to see more]"
            )
        return "\n".join(entries)

    def read(self, path: str, offset_line: int = 1, limit_lines: int = 400) -> str:
        """Numbered lines ``offset_line`` onward, with a note when more remain."""
        text = self._read_text(path)
        lines = text.splitlines()
        start = max(offset_line, 1)
        if lines and start > len(lines):
            raise WorkspaceError(f"'{path}' has {len(lines)} lines; use an offset from 1 to {len(lines)}")
        chosen = lines[start - 1:start - 1 + max(limit_lines, 1)]
        width = len(str(start + len(chosen)))
        body = "\n".join(f"{start + i:>{width}}  {_clip(line)}" for i, line in enumerate(chosen))
        end = start + len(chosen) - 1
        if end < len(lines):
            body += f"\n[lines {start}-{end} of {len(lines)}; read again with offset={end + 1} for more]"
        return body if lines else f"'{path}' is empty"

    def search(self, pattern: str, path: str = ".", max_hits: int = 100) -> str:
        """``path:line: text`` for each line matching a regular expression (Python syntax)."""
        try:
            matcher = LinePattern(pattern, SEARCH_SECONDS)
        except BadPattern as exc:
            raise WorkspaceError(str(exc)) from None
        hits: list[str] = []
        shown = path
        with self._spot(path) as spot:
            self._must_exist(spot, path)
            try:
                for shown, text in self._texts(spot, path):
                    for number, line in enumerate(text.splitlines(), start=1):
                        if matcher.search(line):
                            hits.append(f"{shown}:{number}: {_clip(line.strip(), 300)}")
                            if len(hits) >= max_hits:
                                return "\n".join(hits) + f"\n[stopped at {max_hits} matches; narrow the pattern]"
                    if matcher.expired():
                        return "\n".join([*hits, f"[search stopped after {SEARCH_SECONDS:g} s, at '{shown}'; "
                                                  "search a narrower path for the rest]"])
            except TooSlow:
                raise WorkspaceError(
                    f"the pattern {pattern!r} took longer than the search's {SEARCH_SECONDS:g} s (at '{shown}'); "
                    "simplify it: avoid nested repetition such as (a+)+ or (a|a)*, or search a narrower path"
                ) from None
        return "\n".join(hits) if hits else f"no matches for {pattern!r} under '{path}'"

    def edit(self, path: str, old: str, new: str) -> str:
        """Replace the one exact occurrence of ``old``."""
        if not old:
            raise EditMismatch("old text is empty; to create or overwrite a file use write_file")
        with self._spot(path) as spot:
            text = self._text_at(self._file(spot, path), spot.relative, strict=True)
            count = text.count(old)
            if count == 0:
                raise EditMismatch(
                    f"old text not found in '{path}' (found 0 times); copy it exactly from read_file output "
                    "(without the line numbers), including whitespace, and include more context"
                )
            if count > 1:
                raise EditMismatch(
                    f"old text found {count} times in '{path}'; include more surrounding context so it matches "
                    "exactly once"
                )
            self._put(spot, path, _encoded(text.replace(old, new, 1)))
        return f"edited {path}"

    def write(self, path: str, content: str) -> str:
        """Create or overwrite a file, creating parent directories."""
        data = _encoded(content)
        with self._spot(path, make_dirs=True) as spot:
            if spot.mode is not None and stat.S_ISDIR(spot.mode):
                raise WorkspaceError(f"'{path}' is a directory; give a file path")
            if spot.mode is not None and not stat.S_ISREG(spot.mode):
                raise WorkspaceError(f"'{path}' is {kind_of(spot.mode)}, not a regular file; remove it with a "
                                     "command first if you mean to replace it")
            self._put(spot, path, data)
        return f"{'created' if spot.mode is None else 'overwrote'} {path} ({len(data)} bytes)"

    @contextmanager
    def _spot(self, path: str, make_dirs: bool = False) -> Iterator[Spot]:
        """``tree_fd.locate`` with its refusals worded for the model; errors of the caller's block pass as they are."""
        with ExitStack() as stack:
            try:
                spot = stack.enter_context(locate(self.root, path, make_dirs=make_dirs))
            except Outside:
                raise PathRefused(
                    f"path '{path}' is outside the repository; use a path relative to the repository root"
                ) from None
            except InGit:
                raise PathRefused(
                    f"path '{path}' is inside .git; Mull manages git metadata, change only working-tree files"
                ) from None
            except LinkLoop:
                raise WorkspaceError(f"'{path}' leads through more than {MAX_LINKS} symbolic links; "
                                     "use the path they point to") from None
            except FileNotFoundError as exc:
                raise WorkspaceError(f"'{path}' does not exist ('{exc.filename}' is not there); use list_files "
                                     "or search to find the right path") from None
            except NotADirectoryError as exc:
                raise WorkspaceError(f"'{path}' does not exist: '{exc.filename}' is not a directory") from None
            yield spot

    def _must_exist(self, spot: Spot, path: str) -> int:
        if spot.mode is None:
            raise WorkspaceError(f"'{path}' does not exist; use list_files or search to find the right path")
        return spot.mode

    def _file(self, spot: Spot, path: str) -> Spot:
        """``spot``, if it is a regular file."""
        mode = self._must_exist(spot, path)
        if stat.S_ISDIR(mode):
            raise WorkspaceError(f"'{path}' is a directory; use list_files to see its contents")
        if not stat.S_ISREG(mode):
            raise WorkspaceError(f"'{path}' is {kind_of(mode)}, not a regular file; it cannot be read or edited")
        return spot

    @contextmanager
    def _directory(self, spot: Spot, path: str, instead: str) -> Iterator[int]:
        if not stat.S_ISDIR(self._must_exist(spot, path)):
            raise WorkspaceError(f"'{path}' is not a directory; {instead}")
        fd = os.open(spot.name, DIR_FLAGS, dir_fd=spot.parent)
        try:
            yield fd
        finally:
            os.close(fd)

    def _read_text(self, path: str) -> str:
        with self._spot(path) as spot:
            return self._text_at(self._file(spot, path), spot.relative)

    def _text_at(self, spot: Spot, shown: str, strict: bool = False) -> str:
        try:
            data = read_regular(spot.name, MAX_FILE_BYTES, dir_fd=spot.parent)
        except NotRegular as exc:
            raise WorkspaceError(f"'{shown}' is {exc.kind}, not a regular file; it cannot be read") from None
        except TooLarge as exc:
            raise WorkspaceError(
                f"'{shown}' is {exc.size} bytes, over the {MAX_FILE_BYTES} byte limit; "
                "use search or a command (head, sed -n) to look at parts of it"
            ) from None
        if b"\0" in data[:_BINARY_PROBE]:
            raise WorkspaceError(f"'{shown}' is a binary file; it cannot be read as text")
        if not strict:
            return data.decode("utf-8", errors="replace")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise WorkspaceError(f"'{shown}' is not UTF-8 text; edit it with a command instead") from None

    def _texts(self, spot: Spot, path: str) -> Iterator[tuple[str, str]]:
        """(path, text) of every readable text file at or under ``spot``; others are skipped."""
        if not stat.S_ISDIR(self._must_exist(spot, path)):
            yield spot.relative, self._text_at(self._file(spot, path), spot.relative)
            return
        with self._directory(spot, path, "") as top:
            for entry in walk(top, spot.parts, lambda folder: folder.name not in _NOT_EXPANDED):
                if stat.S_ISREG(entry.mode):
                    try:
                        text = self._text_at(Spot(entry.parent, entry.name, entry.parts, entry.mode), entry.relative)
                    except (WorkspaceError, OSError):
                        continue
                    yield entry.relative, text

    def _put(self, spot: Spot, path: str, data: bytes) -> None:
        """Write ``data`` as the whole content of the regular file at ``spot``, creating it if missing."""
        try:
            with opened(spot.name, os.O_WRONLY | os.O_CREAT, dir_fd=spot.parent) as (fd, _info):
                os.ftruncate(fd, 0)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
        except NotRegular as exc:
            raise WorkspaceError(f"'{path}' is {exc.kind}, not a regular file; remove it with a command first "
                                 "if you mean to replace it") from None


def _encoded(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise WorkspaceError("the text is not valid Unicode (it holds a lone surrogate); send plain UTF-8 text") \
            from None


def _clip(line: str, limit: int = _MAX_LINE_CHARS) -> str:
    return line if len(line) <= limit else line[:limit] + f" [... {len(line) - limit} more characters]"
