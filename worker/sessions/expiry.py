"""Sessions kept in ``MULL_SESSION_BUCKET`` are deleted once their retention is over.

A bucket has no TTL: Redis keeps when each session expires (``bot.session_store``), the page refuses it from
then on, and this hourly cron job deletes the objects. Sessions in Redis expire by themselves.
"""

from __future__ import annotations

import time
from typing import Any

from bot import session_store
from bot.session_bucket import BucketClient
from worker.jobs.services import services


async def expire_sessions(ctx: dict[str, Any]) -> int:
    """Delete the bucket's expired sessions, a batch at a time; how many went."""
    svc = services(ctx)
    bucket = svc.settings.bucket()
    if bucket is None:
        return 0
    client, gone = BucketClient(bucket, svc.http), 0
    while True:
        done = await session_store.expire(svc.redis, client, time.time())
        gone += done
        if done < session_store.EXPIRE_BATCH:
            break
    if gone:
        svc.log.info("expired sessions deleted from the bucket", sessions=gone)
    return gone
