"""Run a process with a pseudo-terminal as its stdout and stderr, as a user at a terminal runs it.

What a program shows a person (live progress, colours) depends on ``isatty``; a test that pipes the output
sees the other behaviour. So the process gets a real pty of a fixed size, and the test reads everything it
drew, escape sequences stripped, with the lines a live display redrew ending up as separate lines.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


@dataclass(frozen=True)
class Screen:
    raw: str  # everything written, escape sequences included
    returncode: int

    @property
    def text(self) -> str:
        """What was written, without escape sequences; carriage returns as line ends."""
        return _ESCAPE.sub("", self.raw).replace("\r\n", "\n").replace("\r", "\n")

    @property
    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.text.split("\n") if line.strip()]


def run_in_terminal(argv: Sequence[str], env: Mapping[str, str], cwd: Path, timeout: float = 120,
                    columns: int = 120) -> Screen:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    try:
        process = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, cwd=cwd,
                                   env={"TERM": "xterm-256color", **env})
    finally:
        os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                process.kill()
                raise AssertionError("the process did not finish in time; it wrote:\n" +
                                     b"".join(chunks).decode(errors="replace"))
            ready, _, _ = select.select([master], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every holder of the terminal's other end has closed it
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(master)
    return Screen(raw=b"".join(chunks).decode(errors="replace"), returncode=process.wait(timeout=30))
