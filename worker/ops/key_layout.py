"""Move keys of an older layout to the current one, once per Redis, before a worker takes any job.

Layout 1 spread a repository's keys under ``mull:issue:``, ``mull:backlog:``, ``mull:snooze:`` and so on;
layout 2 keeps them under ``mull:repo:<id>:`` so removing a repository is one SCAN of its prefix. Without the
move an upgraded Mull would forget every issue's status comment, every backlog and every snooze. The move
keeps values and TTLs (RENAME), runs under a lock so one worker does it, and records the layout so later
starts skip it. A key already present under its new name wins: the old one is dropped.
"""

from __future__ import annotations

from typing import Any

from bot import keys

_SCAN_BATCH = 1000
_LOCK_SECONDS = 600

# Move KEYS[1] to KEYS[2] unless KEYS[2] exists (then KEYS[1] goes); 1 when it moved. Atomic, so two workers
# (or a worker that died mid-move and a new one) never lose a key between EXISTS and RENAME.
_MOVE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('DEL', KEYS[1]) return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
return 1
"""


async def upgrade(redis: Any, log: Any) -> int:
    """Bring this Redis to ``keys.LAYOUT``; return how many keys moved (0 when it already was)."""
    if await _current(redis):
        return 0
    async with redis.lock(keys.KEY_LAYOUT_LOCK, timeout=_LOCK_SECONDS, blocking_timeout=_LOCK_SECONDS):
        if await _current(redis):  # another worker moved them while this one waited
            return 0
        move = redis.register_script(_MOVE)
        moved = 0
        async for raw in redis.scan_iter(match=keys.OLD_LAYOUT_KEYS, count=_SCAN_BATCH):
            try:
                old = raw.decode() if isinstance(raw, bytes) else str(raw)
            except UnicodeDecodeError:
                continue  # not a name Mull ever wrote
            new = keys.moved_key(old)
            if new is not None:
                moved += int(await move(keys=[old, new]))
        await redis.set(keys.KEY_LAYOUT, keys.LAYOUT)
    if moved:
        log.info("moved Redis keys to the per-repository layout", keys=moved, layout=keys.LAYOUT)
    return moved


async def _current(redis: Any) -> bool:
    raw = await redis.get(keys.KEY_LAYOUT)
    return raw is not None and raw.isdigit() and int(raw) >= keys.LAYOUT
