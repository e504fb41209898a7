"""arq's report of a failed job as one line, not a traceback inside a JSON log line.

arq logs every job that raised with ``logger.exception``, whose traceback the JSON renderer folds into the
line. When Mull's job boundary (``worker/jobs/failed_work.py``) already logged the failure's one line, arq's report
is dropped; otherwise (a cron job) it becomes ``job X failed: Type: message`` at ERROR. Either way the
traceback is logged at DEBUG, for whoever runs with MULL_LOG_LEVEL=DEBUG.
"""

from __future__ import annotations

import logging

from worker.github import failures

ARQ_WORKER_LOGGER = "arq.worker"
TRACEBACK_LOGGER = "mull.jobs"


class OneLineJobFailures(logging.Filter):
    """A filter on arq's worker logger; install it with ``install``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR or not record.exc_info or record.exc_info[1] is None:
            return True
        exc = record.exc_info[1]
        job = _job_of(record)
        traceback_log = logging.getLogger(TRACEBACK_LOGGER)  # arq's own logger stays at INFO (bot/logs.py)
        if traceback_log.isEnabledFor(logging.DEBUG):
            traceback_log.debug("traceback of %s", job, exc_info=record.exc_info)
        if failures.was_reported(exc):  # Mull's boundary logged its line already
            return False
        cause = f" ({failures.describe(exc.__cause__)})" if exc.__cause__ is not None else ""
        record.msg, record.args = "%s", (f"{job} failed: {failures.describe(exc)}{cause}",)
        record.exc_info, record.exc_text = None, None
        return True


def _job_of(record: logging.LogRecord) -> str:
    """arq's message is ``'%6.2fs ! %s failed, %s: %s'`` with the job's ref second, or ``'deserializing job %s
    failed'`` with its id alone: keep the job, drop the rest."""
    args = record.args if isinstance(record.args, tuple) else ()
    return f"job {args[1]}" if len(args) > 1 else f"job {args[0]}" if args else "a job"


def install() -> None:
    """Once per process, however many workers it builds (tests build many)."""
    logger = logging.getLogger(ARQ_WORKER_LOGGER)
    if not any(isinstance(existing, OneLineJobFailures) for existing in logger.filters):
        logger.addFilter(OneLineJobFailures())
