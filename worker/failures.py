"""Which failures are worth another try, and when: GitHub 5xx, rate limits, timeouts, lost connections."""

from __future__ import annotations

from datetime import timedelta

import httpx
from arq import Retry
from githubkit.exception import RateLimitExceeded, RequestError, RequestFailed, RequestTimeout
from redis.exceptions import ConnectionError as RedisConnectionError

MAX_TRIES = 5


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, RateLimitExceeded | RequestTimeout | RedisConnectionError | httpx.TransportError):
        return True
    if isinstance(exc, RequestFailed):
        return exc.response.status_code >= 500
    return isinstance(exc, RequestError)


def retry_later(exc: BaseException, job_try: int) -> Retry:
    """arq Retry with exponential backoff, or at the rate-limit reset when GitHub says when."""
    delay = timedelta(seconds=min(15 * 2 ** max(job_try - 1, 0), 600))
    if isinstance(exc, RateLimitExceeded):
        delay = max(exc.retry_after, timedelta(seconds=5))
    return Retry(defer=delay)

