"""Work that failed, or waits to be tried again after a failure, kept where ``mull status`` reads it.

Every job function runs inside ``watched``: a failure that will be tried again is noted (what, where it
failed, which try, when the next one is) and logged as one warning naming the host or URL; a failure that is
final is logged as one error line (type and message, the traceback only at DEBUG) and joins the list of recent
failures with what to do about it. A delivery's final failure is a dead letter (``worker/webhooks/dead_letters.py``),
listed there instead. A job that starts again is no longer waiting: its note goes (``started``).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from arq import Retry
from redis.exceptions import RedisError

from bot import keys
from bot.jobs import CritiqueRequest, Delivery, RefreshRequest, ReviseRequest, SolveRequest, WakeRequest
from worker.github import failures
from worker.jobs.services import services
from worker.ops import stats
from worker.ops.redis_reply import reply

T = TypeVar("T")
RETRYING_SHOWN = 20


@dataclass(frozen=True)
class Work:
    """What a job was doing, in the words ``mull status`` uses, and what a person can do when it fails."""

    stage: str
    repo: str
    number: int | None
    fix: str
    is_delivery: bool = False

    @property
    def where(self) -> str:
        return f"{self.repo}#{self.number}" if self.number is not None else self.repo


def work_of(request: object) -> Work:
    """The work a job's argument describes."""
    if isinstance(request, SolveRequest):
        return Work("implement", request.repo, request.issue,
                    f"comment `/mull retry` on {request.repo}#{request.issue}")
    if isinstance(request, CritiqueRequest):
        return Work("critique", request.repo, request.pr, f"comment `/mull critique` on {request.repo}#{request.pr}")
    if isinstance(request, ReviseRequest):
        return Work(f"revise ({request.reason})", request.repo, request.pr,
                    f"comment `/mull revise` on {request.repo}#{request.pr}")
    if isinstance(request, WakeRequest):
        return Work("wake", request.repo, request.number,
                    f"comment `/mull unsnooze` on {request.repo}#{request.number}")
    if isinstance(request, RefreshRequest):
        return Work("refresh queue", request.repo, None, "nothing: the next change to the queue refreshes it again")
    if isinstance(request, Delivery):
        return _delivery_work(request)
    return Work("job", "", None, "see the worker's log")


def _delivery_work(delivery: Delivery) -> Work:
    try:
        payload = orjson.loads(delivery.body)
    except orjson.JSONDecodeError:
        payload = {}
    payload = payload if isinstance(payload, dict) else {}
    repo = str((payload.get("repository") or {}).get("full_name") or "")
    subject = payload.get("issue") or payload.get("pull_request") or {}
    number = subject.get("number") if isinstance(subject, dict) else None
    name = f"{delivery.event}.{payload['action']}" if payload.get("action") else delivery.event
    return Work(f"delivery {name}", repo, int(number) if isinstance(number, int) else None,
                f"`mull retry-deliveries {delivery.guid}`", is_delivery=True)


def watched(job: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., Coroutine[Any, Any, T]]:
    """``job`` with its failures noted and logged as above; what it raises still reaches arq unchanged."""

    @functools.wraps(job)
    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> T:
        try:
            return await job(ctx, *args, **kwargs)
        except Retry as retry:
            if retry.__cause__ is not None:  # a failure tried again (not a wait for quiet reviewers or a slot)
                await _note_retry(ctx, work_of(args[0] if args else None), retry.__cause__, retry)
            raise
        except Exception as exc:  # the job's boundary: noted, logged once, re-raised for arq
            await _note_failure(ctx, work_of(args[0] if args else None), exc)
            raise

    return run


async def started(redis: Any, job_id: str) -> None:
    """A job that runs is not waiting for its next try any more."""
    await redis.hdel(keys.RETRYING, job_id)


async def _note_retry(ctx: dict[str, Any], work: Work, exc: BaseException, retry: Retry) -> None:
    job_id = ctx.get("job_id") or ""
    job_try = int(ctx.get("job_try") or 1)
    wait_s = round((retry.defer_score or 0) / 1000, 1)
    services(ctx).log.warning(f"{work.stage} failed, trying again in {wait_s:g} s"
                       + (f": {failures.target_of(exc)}" if failures.target_of(exc) else ""),
                       job_id=job_id, repo=work.repo, number=work.number, target=failures.target_of(exc),
                       error=failures.describe(exc), job_try=job_try, max_tries=failures.MAX_TRIES)
    entry = {"job": job_id, "stage": work.stage, "repo": work.repo, "number": work.number,
             "reason": failures.describe(exc), "target": failures.target_of(exc), "try": job_try,
             "max_tries": failures.MAX_TRIES, "next_at": time.time() + wait_s, "fix": work.fix}
    try:
        await reply(services(ctx).redis.hset(keys.RETRYING, job_id, json.dumps(entry)))
    except (RedisError, OSError):
        pass  # Redis is the trouble itself: the warning above is what is left


async def _note_failure(ctx: dict[str, Any], work: Work, exc: BaseException) -> None:
    job_id = ctx.get("job_id") or ""
    if not failures.was_reported(exc):
        services(ctx).log.error(f"{work.stage} failed: {failures.describe(exc)}", job_id=job_id, repo=work.repo,
                         number=work.number, error_type=type(exc).__name__, fix=work.fix)
        failures.mark_reported(exc)
    if work.is_delivery:
        return  # kept as a dead letter, which `mull status` lists with its own fix
    try:
        await stats.record_failure(services(ctx).redis, work.stage, work.repo, work.number or 0, failures.describe(exc),
                                   job=job_id, fix=work.fix)
    except (RedisError, OSError):
        pass


async def retrying(pool: Any, queued: set[str]) -> list[dict[str, Any]]:
    """Jobs waiting for another try after a failure, soonest first; notes of jobs gone from the queue are
    left out (a stopped run, a flushed queue)."""
    notes = []
    for raw_id, raw in (await pool.hgetall(keys.RETRYING)).items():
        job_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
        if job_id in queued:
            notes.append(json.loads(raw))
    return sorted(notes, key=lambda note: note.get("next_at") or 0)[:RETRYING_SHOWN]
