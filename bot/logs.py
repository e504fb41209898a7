"""JSON logs through structlog, with every secret redacted before a line is written.

Secrets reach log lines in surprising ways (exception text, URLs, subprocess output), so redaction is a
processor applied to every rendered value, not a rule callers must remember. The rules themselves are
``bot.redaction``'s, the same ones that guard what Mull posts.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any, TextIO

import structlog

from bot.redaction import REDACTED, Redactor, scrub

__all__ = ["REDACTED", "LogRedactor", "configure", "get", "scrub"]


class LogRedactor(Redactor):
    """The redactor as a structlog processor: every value of an event, nested ones too."""

    def __call__(self, logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        return {key: self._value(val) for key, val in event.items()}

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self._value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._value(v) for v in value]
        if isinstance(value, (int, float, bool)) or value is None:
            return value
        return self.text(repr(value))


def configure(level: str = "INFO", secrets: Iterable[str] = (), stream: TextIO | None = None) -> LogRedactor:
    """Set up structlog (and stdlib logging underneath, for arq/uvicorn) to write redacted JSON lines."""
    redactor = LogRedactor(secrets)
    out = stream or sys.stderr
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redactor,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        structlog.processors.JSONRenderer()],
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpx2", "httpcore", "hishel", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # arq logs every poll of a running job at DEBUG ("already running elsewhere"): keep it at INFO.
    logging.getLogger("arq").setLevel(max(logging.INFO, logging.getLevelName(level)))
    return redactor


def get(name: str | None = None, **bound: Any) -> Any:
    return structlog.get_logger(name).bind(**bound) if bound else structlog.get_logger(name)

