"""Reading a request's JSON body: bounded in size and in time, and parsed without stalling the worker.

The gateway runs in the worker's event loop, beside other runs' model traffic and the job queue's
heartbeats, so a body must not be a way to take that loop over. It is read only once the request has its
run's turn (one per run at a time) and has been counted as a step, so junk is never free: a run that sends
nothing but bad bodies ends at its step budget. On top of that:

- at most ``MAX_BODY`` bytes: a long agent conversation is a few hundred KiB; 4 MiB leaves room for an
  image or two and bounds what one request can cost to parse;
- at most ``BODY_SECONDS`` to arrive: uvicorn has no deadline for a request's body (only for a connection
  idle between requests), so a client that sends its body a byte at a time would hold its run's turn;
- a body over ``PARSE_ON_LOOP`` is parsed in a thread (and the forwarder prepares it there too). Parsing a
  large body takes tens of milliseconds (a 4 MiB body of tiny objects, over 100). orjson holds the GIL
  while it builds objects, so a thread shortens the loop's stalls (about threefold, measured) rather than
  ending them; the step budget bounds their number.

A refused body is answered with ``Connection: close``, so that uvicorn does not go on reading (and dropping)
the rest of it, however much the request announced.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request

MAX_BODY = 4 * 1024 * 1024
BODY_SECONDS = 30.0  # a 4 MiB body crosses a unix socket in milliseconds; this is for a client that stalls
PARSE_ON_LOOP = 256 * 1024  # bodies up to this size parse in well under a millisecond


class BodyRefused(Exception):
    """Why a body cannot be used: the status for the agent and a message that says what to send instead."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def _read(request: Request, max_body: int) -> bytes:
    too_large = BodyRefused(413, f"request body over {max_body} bytes: send a shorter conversation (drop old "
                                 "tool output)")
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > max_body):
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_body:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, max_body: int = MAX_BODY,
                    seconds: float = BODY_SECONDS) -> tuple[dict[str, Any], int]:
    """The body as a JSON object and its size in bytes, or ``BodyRefused``."""
    try:
        async with asyncio.timeout(seconds):
            raw = await _read(request, max_body)
    except TimeoutError:
        raise BodyRefused(408, f"the request body did not arrive within {seconds:g} s: send the whole request "
                               "at once") from None
    except ClientDisconnect:
        raise BodyRefused(400, "the connection closed before the request body arrived") from None
    try:
        body = await asyncio.to_thread(orjson.loads, raw) if large(len(raw)) else orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BodyRefused(400, "request body is not valid JSON: send the request as a JSON object with "
                               "Content-Type: application/json") from None
    if not isinstance(body, dict):
        raise BodyRefused(400, f"request body is a JSON {type(body).__name__}, not an object: send a JSON "
                               "object with model and messages")
    return body, len(raw)


def large(size: int) -> bool:
    """Whether work on a body of ``size`` bytes (parsing, walking it) belongs off the event loop."""
    return size > PARSE_ON_LOOP
