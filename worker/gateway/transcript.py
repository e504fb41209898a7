"""A run's transcript: every model request and answer, one JSON line each, secrets redacted, owner-only.

The transcript is what a later session page shows of a run ("what did the agent ask, what did the model
say, what did it cost"), so the format is deliberately plain. ``<transcripts_dir>/<run_id>.jsonl`` (file
0600 in a 0700 directory) holds one object per model request, in the order the answers completed:

    time      ISO 8601 UTC time the request arrived
    route     "/v1/chat/completions" or "/v1/messages"
    protocol  "openai" or "anthropic"
    status    the HTTP status the agent received (the upstream's, or the gateway's own 4xx/502/504)
    ms        milliseconds from arrival to the end of the answer
    stream    whether the answer was streamed
    request   {"messages": [...]} as the agent sent them (Anthropic: also "system"); null when the gateway
              did not use the body (refused before reading it, or as too large, too slow or not an object)
    response  the upstream's JSON answer; for a stream {"text", "tool_calls": [{"id", "name", "arguments"}],
              "finish_reason"}; null when there was no answer
    usage     {"input", "output", "estimated"} tokens counted for the request (estimated: ~4 chars a token)
    refused   only on a request refused for budget: the budget that is spent, e.g. "steps (40)"
    error     only when the gateway refused the request or could not get a whole answer: what went wrong
    dropped   only when the gateway left out some of the agent's fields, tools or betas: their names

Every string in a record (keys included) has the real API key, the run's token and each operator-listed
``redact`` value replaced by ``[redacted]`` before it is written.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from worker.gateway.scrub import Scrubber


def private_dir(path: Path) -> Path:
    """``path`` as a directory only its owner can enter: created 0700, or refused if others can."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid != os.getuid() or info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PermissionError(
            f"{path} is open to other users (mode {stat.S_IMODE(info.st_mode):o}, owner uid {info.st_uid}): "
            "the model gateway keeps its socket and transcripts in a directory of its own; give it one under "
            "MULL_DATA_DIR, or run chmod 700 on this one")
    return path


class Transcript:
    """Append-only JSON lines for one run; ``write`` redacts and appends one record."""

    def __init__(self, path: Path, scrubber: Scrubber) -> None:
        self.path = path
        self._scrubber = scrubber
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        self._fd: int | None = os.open(path, flags, 0o600)
        os.fchmod(self._fd, 0o600)

    def write(self, record: dict[str, object]) -> None:
        if self._fd is None:
            return
        line = self._scrubber.json(record) + b"\n"
        os.write(self._fd, line)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
