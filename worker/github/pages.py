"""Walking GitHub's paged list endpoints (``per_page``/``page``) one item at a time, stopping at a short page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

PER_PAGE = 100  # GitHub's maximum


async def every(call: Any, *args: Any, **params: Any) -> AsyncIterator[Any]:
    """Each item of ``call(*args, **params)`` across its pages; the caller may stop early."""
    page = 1
    while True:
        batch: Any = (await call(*args, per_page=PER_PAGE, page=page, **params)).json()
        for item in batch:
            yield item
        if len(batch) < PER_PAGE:
            return
        page += 1
