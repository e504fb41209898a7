"""Awaiting a redis-py command with the type of its reply.

redis-py types every command as ``Awaitable[T] | T``, one signature for its sync and asyncio clients, so mypy
cannot await one as it stands. The asyncio client always returns the awaitable; ``reply`` awaits it and gives
mypy the ``T``, instead of silencing the check module by module.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def reply(command: Awaitable[T] | T) -> T:
    """``await reply(redis.hget(...))``: the command's reply, typed."""
    if inspect.isawaitable(command):
        return await command
    return command
