"""``mull retry-deliveries``: put dead letters back on the queue (or drop them) from the operator's shell.

The command only enqueues: a worker handles each retried delivery as it would the original, and the letter
goes away when that succeeds (``worker/webhooks/dead_letters.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

from worker.jobs.queue import connect
from worker.webhooks import dead_letters


async def retry_deliveries(redis_url: str, guids: Sequence[str] | None, *, forget: bool = False) -> int:
    """``guids`` None means every letter. Raises UnknownDeadLetter, before changing anything, for a bad guid."""
    pool = await connect(redis_url)
    try:
        if forget:
            letters = await dead_letters.check(pool, guids)
            for letter in letters:
                await dead_letters.forget(pool, letter.guid)
            outcomes = [(letter.guid, "forgotten") for letter in letters]
        else:
            outcomes = await dead_letters.retry(pool, guids)
    finally:
        await pool.aclose()
    if not outcomes:
        print("no dead letters")
    for guid, outcome in outcomes:
        print(f"{guid}: {outcome}")
    return 0
