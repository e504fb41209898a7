"""Which failures are worth another try, and when: GitHub 5xx, rate limits, timeouts, lost connections; and how
to name one in a log line or ``mull status``: its type, what it said, and the host or URL it failed against."""

from __future__ import annotations

from datetime import timedelta

import httpx
from arq import Retry
from githubkit.exception import RateLimitExceeded, RequestError, RequestFailed, RequestTimeout
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from bot.redaction import scrub

MAX_TRIES = 5
_SAID_CHARS = 300
_REPORTED = "_mull_reported"  # set on an exception once a job's boundary logged its one line


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



def target_of(exc: BaseException) -> str:
    """Where the failure happened: ``GET https://api.github.com/repos/o/r`` (no query: it may carry a token),
    ``Redis``, or "" when the exception does not say."""
    request = _request_of(exc)
    if request is not None:
        url = request.url
        return f"{request.method} {url.scheme}://{url.netloc.decode(errors='replace')}{url.path}"
    if isinstance(exc, RedisError):
        return "Redis"
    return ""


def describe(exc: BaseException) -> str:
    """One line: ``RequestFailed: HTTP 502 Bad Gateway from GET https://…`` or ``KeyError: 'head'``, scrubbed
    of anything shaped like a credential. The traceback is for DEBUG logs, never this line."""
    if isinstance(exc, RequestFailed):
        said = f"HTTP {exc.response.status_code} {exc.response.raw_response.reason_phrase}".strip()
    else:
        said = " ".join(str(exc).split()) or repr(exc)
        if isinstance(exc, RequestError) and not str(exc).strip():
            said = " ".join(str(exc.exc).split()) or type(exc.exc).__name__
    target = target_of(exc)
    if target and target.split(" ", 1)[-1] not in said:
        said += f" from {target}" if isinstance(exc, RequestFailed) else f" ({target})"
    said = scrub(said)
    return f"{type(exc).__name__}: {said if len(said) <= _SAID_CHARS else said[:_SAID_CHARS] + '…'}"


def mark_reported(exc: BaseException) -> None:
    """The job's boundary logged this failure's line: arq's own report of it drops to DEBUG."""
    try:
        setattr(exc, _REPORTED, True)
    except AttributeError:  # an exception type with __slots__: reported twice rather than not at all
        pass


def was_reported(exc: BaseException) -> bool:
    return bool(getattr(exc, _REPORTED, False))


def _request_of(exc: BaseException) -> httpx.Request | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, RequestFailed):
            return seen.request
        inner = seen.exc if isinstance(seen, RequestError) else seen
        if isinstance(inner, httpx.RequestError | httpx.HTTPStatusError):
            try:
                return inner.request
            except RuntimeError:  # httpx raises when the error was made without its request
                return None
        seen = seen.__cause__
    return None
