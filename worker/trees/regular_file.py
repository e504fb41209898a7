"""Reading a file that hostile code may have written or swapped: regular files only, and never more than asked.

Agents and the commands they run write the files Mull reads back in the worker: a run's tree, a CLI agent's
summary file. Opened by name, a link there leads anywhere and a FIFO blocks the reading thread for ever;
read whole, a sparse file costs the worker its apparent size in memory (``truncate -s 64G`` is free). So a
file is opened with ``O_NOFOLLOW | O_NONBLOCK | O_NOCTTY``, looked at with ``fstat`` before one byte is
read, refused unless it is a regular file, and read only up to a limit the caller states, even if it grows.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_OPEN_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_CHUNK = 1 << 20


class NotRegular(Exception):
    """The name is a directory, link, FIFO, socket or device; ``kind`` says which, for messages."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"is {kind}, not a regular file")
        self.kind = kind


class TooLarge(Exception):
    """The file is over the caller's limit; found out from its size, before anything was read."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"is {size} bytes, over the limit of {limit} bytes")
        self.size = size
        self.limit = limit


def kind_of(mode: int) -> str:
    """What a file of this mode is, as a message names it."""
    kinds = ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"), (stat.S_ISLNK, "a symbolic link"),
             (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"),
             (stat.S_ISBLK, "a device"))
    return next((name for test, name in kinds if test(mode)), "a special file")


@contextmanager
def opened(name: str | bytes | Path, flags: int = os.O_RDONLY, *, dir_fd: int | None = None,
           mode: int = 0o666) -> Iterator[tuple[int, os.stat_result]]:
    """A descriptor of the regular file ``name`` (relative to ``dir_fd``) and its ``fstat``; NotRegular else.

    A link as the last component is refused, never followed; a FIFO opens without waiting for a writer,
    and is then refused like every other non-regular file.
    """
    try:
        fd = os.open(name, flags | _OPEN_FLAGS, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegular("a symbolic link") from None
        if exc.errno == errno.ENXIO:  # a FIFO opened for writing with no reader, or a socket
            raise NotRegular("a FIFO or socket") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegular(kind_of(info.st_mode))
        yield fd, info
    finally:
        os.close(fd)


def read_upto(fd: int, limit: int) -> bytes:
    """At most ``limit`` bytes from ``fd``'s position: fewer only at end of file."""
    parts = []
    left = limit
    while left > 0:
        chunk = os.read(fd, min(left, _CHUNK))
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def read_regular(name: str | bytes | Path, limit: int, *, dir_fd: int | None = None) -> bytes:
    """The whole regular file; TooLarge (decided by its size, before reading) when it is over ``limit``."""
    with opened(name, dir_fd=dir_fd) as (fd, info):
        if info.st_size > limit:
            raise TooLarge(info.st_size, limit)
        data = read_upto(fd, limit + 1)
        if len(data) > limit:  # it grew after fstat
            raise TooLarge(len(data), limit)
        return data


def read_head(path: Path, limit: int) -> tuple[bytes, bool]:
    """The first ``limit`` bytes of the regular file at ``path``, and whether there was more."""
    with opened(path) as (fd, _info):
        data = read_upto(fd, limit + 1)
    return data[:limit], len(data) > limit
