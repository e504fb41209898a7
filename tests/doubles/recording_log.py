"""A stand-in for the structlog logger in a worker's ``ctx["log"]`` that keeps every line for the test to read."""

from __future__ import annotations

from typing import Any


class RecordingLog:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []  # (level, event, fields)

    def bind(self, **_: Any) -> RecordingLog:
        return self  # one record for the job and its bound loggers

    def debug(self, event: str, **kw: Any) -> None:
        self.lines.append(("debug", event, kw))

    def info(self, event: str, **kw: Any) -> None:
        self.lines.append(("info", event, kw))

    def warning(self, event: str, **kw: Any) -> None:
        self.lines.append(("warning", event, kw))

    def error(self, event: str, **kw: Any) -> None:
        self.lines.append(("error", event, kw))

    def warnings(self) -> list[tuple[str, dict[str, Any]]]:
        return [(event, kw) for level, event, kw in self.lines if level == "warning"]
