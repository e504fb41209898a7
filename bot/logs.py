"""JSON logs through structlog, with every secret redacted before a line is written.

Secrets reach log lines in surprising ways (exception text, URLs, subprocess output), so redaction is a
processor applied to every rendered value, not a rule callers must remember.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from typing import Any, TextIO

import structlog

REDACTED = "[redacted]"

# Installation/user tokens, JWTs, PEM blocks, credentials in URLs, Authorization headers.
_PATTERNS = [
    re.compile(r"\bgh[pousr]_[A-Za-z0-9_]{16,}"),
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.S),
    re.compile(r"(?<=://)[^/@\s:]+:[^/@\s]+(?=@)"),
    re.compile(r"(?i)(?<=authorization: )(basic|bearer|token) [^\s'\"]+"),
]


class Redactor:
    """Removes known secret values and anything shaped like a credential from log values."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def add(self, secret: str) -> None:
        if secret and secret not in self._secrets:
            self._secrets.append(secret)
            self._secrets.sort(key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        for pattern in _PATTERNS:
            value = pattern.sub(REDACTED, value)
        return value

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


def configure(level: str = "INFO", secrets: Iterable[str] = (), stream: TextIO | None = None) -> Redactor:
    """Set up structlog (and stdlib logging underneath, for arq/uvicorn) to write redacted JSON lines."""
    redactor = Redactor(secrets)
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


def scrub(text: str) -> str:
    """Credential-shaped substrings removed: for text Mull shows on GitHub (errors in status comments)."""
    return Redactor().text(text)
