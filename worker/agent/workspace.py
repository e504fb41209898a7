"""The builtin agent's file operations, fenced to the worktree.

Paths come from a model that read untrusted issue text, so every one is resolved (symlinks included)
and refused unless it lands inside the worktree and outside ``.git``. Errors are worded for the model:
it reads them as tool results and should be able to correct itself.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

MAX_FILE_BYTES = 1_000_000
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
        """The real path under the root, or PathRefused."""
        candidate = Path(path or ".")
        if not candidate.is_absolute():
            candidate = self.root / candidate
        real = candidate.resolve(strict=False)
        if not real.is_relative_to(self.root):
            raise PathRefused(
                f"path '{path}' is outside the repository; use a path relative to the repository root"
            )
        if ".git" in real.relative_to(self.root).parts or ".git" in Path(path).parts:
            raise PathRefused(
                f"path '{path}' is inside .git; Mull manages git metadata, change only working-tree files"
            )
        return real

    def relative(self, real: Path) -> str:
        return real.relative_to(self.root).as_posix() or "."

    def list(self, path: str = ".", max_entries: int = 500) -> str:
        """A tree listing; directories end with ``/``."""
        top = self.resolve(path)
        if not top.is_dir():
            raise WorkspaceError(f"'{path}' is not a directory; use read_file to read a file")
        entries: list[str] = []
        for dirpath, dirnames, filenames in os.walk(top):
            here = Path(dirpath)
            dirnames[:] = sorted(d for d in dirnames if d != ".git")
            for name in dirnames:
                suffix = "/ (not expanded)" if name in _NOT_EXPANDED else "/"
                entries.append(self.relative(here / name) + suffix)
            dirnames[:] = [d for d in dirnames if d not in _NOT_EXPANDED and not (here / d).is_symlink()]
            entries.extend(self.relative(here / name) for name in sorted(filenames) if name != ".git")
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
        """``path:line: text`` for each line matching a Python regular expression."""
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise WorkspaceError(f"invalid regular expression {pattern!r}: {exc}") from None
        top = self.resolve(path)
        hits: list[str] = []
        for file in self._files(top):
            try:
                text = self._text_of(file)
            except (WorkspaceError, OSError):
                continue
            for number, line in enumerate(text.splitlines(), start=1):
                if regex.search(line):
                    hits.append(f"{self.relative(file)}:{number}: {_clip(line.strip(), 300)}")
                    if len(hits) >= max_hits:
                        return "\n".join(hits) + f"\n[stopped at {max_hits} matches; narrow the pattern]"
        return "\n".join(hits) if hits else f"no matches for {pattern!r} under '{path}'"

    def edit(self, path: str, old: str, new: str) -> str:
        """Replace the one exact occurrence of ``old``."""
        if not old:
            raise EditMismatch("old text is empty; to create or overwrite a file use write_file")
        text = self._read_text(path, strict=True)
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
        self.resolve(path).write_text(text.replace(old, new, 1), encoding="utf-8", newline="")
        return f"edited {path}"

    def write(self, path: str, content: str) -> str:
        """Create or overwrite a file, creating parent directories."""
        real = self.resolve(path)
        if real.is_dir():
            raise WorkspaceError(f"'{path}' is a directory; give a file path")
        real.parent.mkdir(parents=True, exist_ok=True)
        existed = real.exists()
        real.write_text(content, encoding="utf-8", newline="")
        return f"{'overwrote' if existed else 'created'} {path} ({len(content.encode())} bytes)"

    def _read_text(self, path: str, strict: bool = False) -> str:
        real = self.resolve(path)
        if real.is_dir():
            raise WorkspaceError(f"'{path}' is a directory; use list_files to see its contents")
        if not real.exists():
            raise WorkspaceError(f"'{path}' does not exist; use list_files or search to find the right path")
        return self._text_of(real, strict)

    def _text_of(self, real: Path, strict: bool = False) -> str:
        size = real.stat().st_size
        if size > MAX_FILE_BYTES:
            raise WorkspaceError(
                f"'{self.relative(real)}' is {size} bytes, over the {MAX_FILE_BYTES} byte limit; "
                "use search or a command (head, sed -n) to look at parts of it"
            )
        data = real.read_bytes()
        if b"\0" in data[:_BINARY_PROBE]:
            raise WorkspaceError(f"'{self.relative(real)}' is a binary file; it cannot be read as text")
        if not strict:
            return data.decode("utf-8", errors="replace")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise WorkspaceError(
                f"'{self.relative(real)}' is not UTF-8 text; edit it with a command instead"
            ) from None

    def _files(self, top: Path) -> Iterator[Path]:
        if top.is_file():
            yield top
            return
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if d != ".git" and d not in _NOT_EXPANDED)
            for name in sorted(filenames):
                file = Path(dirpath) / name
                if name != ".git" and not file.is_symlink():
                    yield file


def _clip(line: str, limit: int = _MAX_LINE_CHARS) -> str:
    return line if len(line) <= limit else line[:limit] + f" [... {len(line) - limit} more characters]"
