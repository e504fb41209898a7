"""Logs through structlog, with every secret redacted before a line is written.

Secrets reach log lines in surprising ways (exception text, URLs, subprocess output), so redaction is a
processor applied to every rendered value, not a rule callers must remember. The rules themselves are
``bot.redaction``'s, the same ones that guard what Mull posts.

A person at a terminal reads aligned lines (structlog's ConsoleRenderer); anything else (a file, journald, a
log shipper) gets one JSON object a line. MULL_LOG_FORMAT chooses: auto (by whether the stream is a terminal),
console or json. Routine lines (arq's start and end of every cron turn, several a minute) are DEBUG.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any, TextIO

import structlog

from bot.redaction import REDACTED, Redactor, scrub

__all__ = ["FORMATS", "REDACTED", "LogRedactor", "RoutineCronLines", "configure", "get", "scrub"]

FORMATS = ("auto", "console", "json")
# arq's lines for a job starting and a job ending well (worker.py, run_job); a cron job's name starts "cron:".
ARQ_JOB_STARTED = "%6.2fs → %s(%s)%s"
ARQ_JOB_DONE = "%6.2fs ← %s ● %s"


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


class RoutineCronLines(logging.Filter):
    """arq logs each cron turn's start and end at INFO; for Mull they are DEBUG, shown only at that level."""

    def __init__(self, show: bool) -> None:
        super().__init__()
        self.show = show

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        if record.levelno == logging.INFO and record.msg in (ARQ_JOB_STARTED, ARQ_JOB_DONE) and len(args) > 1 \
                and str(args[1]).startswith("cron:"):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return self.show
        return True


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed, or not a real file
        return False


def configure(level: str = "INFO", secrets: Iterable[str] = (), stream: TextIO | None = None,
              fmt: str = "json") -> LogRedactor:
    """Set up structlog (and stdlib logging underneath, for arq/uvicorn) to write redacted lines in ``fmt``."""
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r} is not one of {', '.join(FORMATS)}")
    redactor = LogRedactor(secrets)
    out = stream or sys.stderr
    console = fmt == "console" or (fmt == "auto" and is_terminal(out))
    renderer: Any = structlog.dev.ConsoleRenderer(colors=is_terminal(out)) if console \
        else structlog.processors.JSONRenderer()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        # A person reads the local time of day; machines get the full UTC instant.
        structlog.processors.TimeStamper(fmt="%H:%M:%S", utc=False) if console
        else structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redactor,
    ]
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # markdown_it logs every rule it tries at DEBUG: some 50 KB of lines per comment parsed, 70x the parse.
    for noisy in ("httpx", "httpx2", "httpcore", "hishel", "asyncio", "markdown_it"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # arq logs every poll of a running job at DEBUG ("already running elsewhere"): keep it at INFO.
    logging.getLogger("arq").setLevel(max(logging.INFO, logging.getLevelName(level)))
    jobs = logging.getLogger("arq.worker")
    for old in [f for f in jobs.filters if isinstance(f, RoutineCronLines)]:
        jobs.removeFilter(old)
    jobs.addFilter(RoutineCronLines(show=logging.getLevelName(level) <= logging.DEBUG))
    return redactor


def get(name: str | None = None, **bound: Any) -> Any:
    return structlog.get_logger(name).bind(**bound) if bound else structlog.get_logger(name)

