"""Storing a finished run's session, and the link pull requests and comments carry to its page.

Called where each run ends (``worker/jobs/branch_work.py``, ``worker/jobs/critique.py``, the plan stage): a
run's page is worth having, but never worth failing the run for, so a session that cannot be stored is logged
and the run goes on without its link.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from redis.exceptions import RedisError

from bot import session_store
from bot.session_bucket import BucketClient, BucketError
from bot.session_store import Session, Step
from bot.settings import ConfigError, MullSettings
from worker.ops.model_check import read_transcript
from worker.sessions.transcript_steps import steps as transcript_steps


def link(settings: MullSettings, run_id: str | None) -> str | None:
    """The session page's address, when Mull knows its public address (MULL_PUBLIC_URL) and the run has one."""
    if not run_id or not settings.public_url:
        return None
    return f"{settings.public_url.rstrip('/')}/runs/{quote(run_id, safe='')}"


def markdown_link(settings: MullSettings, run_id: str | None, text: str = "What the agent did, step by step") -> str:
    """`` [text](url)`` for a Markdown body, or "" without a public address."""
    url = link(settings, run_id)
    return f"[{text}]({url})" if url else ""


def gateway_session(run_id: str, stage: str, repo_id: int, repo: str, subject: str, started: float,
                    transcript: Path, outcome: str, files: tuple[str, ...] = (), extra: tuple[Step, ...] = (),
                    ) -> Session:
    """A gateway run's session, read from its transcript; ``extra`` steps (what Mull saw after) go last."""
    steps = transcript_steps(read_transcript(transcript))
    return Session(run_id=run_id, stage=stage, repo_id=repo_id, repo=repo, subject=subject, started=started,
                   seconds=round(time.time() - started, 1), outcome=outcome, steps=(*steps, *extra), files=files,
                   input_tokens=sum(s.input_tokens or 0 for s in steps),
                   output_tokens=sum(s.output_tokens or 0 for s in steps))


async def keep(svc: Any, session: Session, log: Any) -> str | None:
    """Store ``session`` (redacted with every secret the worker knows); its run id, or None when it failed."""
    try:
        bucket = svc.settings.bucket()
        await session_store.save(svc.redis, session, svc.redactor, svc.settings.session_retention_days,
                                 BucketClient(bucket, svc.http) if bucket else None)
    except (RedisError, OSError, ValueError, BucketError, ConfigError) as exc:
        log.warning("session not stored: the run has no session page", run=session.run_id,
                    error=svc.redactor.text(str(exc)))
        return None
    log.info("session stored", run=session.run_id, steps=len(session.steps))
    return session.run_id
