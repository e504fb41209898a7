"""Cutting a server-sent-events byte stream into whole events, as it arrives.

The gateway passes a streamed answer through chunk by chunk, but it must look at each event (for usage, the
transcript and redaction), and the network cuts chunks wherever it likes: an event may arrive in three
pieces or three events in one. ``EventSplitter`` keeps the unfinished tail and hands back whole events,
byte for byte as the upstream sent them, so that forwarding what it returns forwards the stream unchanged.
"""

from __future__ import annotations

import re

import orjson

_EVENT_END = re.compile(rb"\r?\n\r?\n")


class EventSplitter:
    """``feed(chunk)`` returns the events completed by ``chunk``; ``rest()`` is what never completed."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buffer += chunk
        events: list[bytes] = []
        start = 0
        for match in _EVENT_END.finditer(self._buffer):
            events.append(self._buffer[start:match.end()])
            start = match.end()
        self._buffer = self._buffer[start:]
        return events

    def rest(self) -> bytes:
        rest, self._buffer = self._buffer, b""
        return rest


def event_data(event: bytes) -> object | None:
    """The JSON an event's ``data:`` lines carry; None for comments, ``[DONE]`` and anything not JSON."""
    lines = [line[5:].removeprefix(b" ") for line in event.splitlines() if line.startswith(b"data:")]
    if not lines:
        return None
    try:
        return orjson.loads(b"\n".join(lines))
    except orjson.JSONDecodeError:
        return None
