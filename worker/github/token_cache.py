"""githubkit's in-memory token cache, minting each installation token once when many requests need it at once.

githubkit's App auth reads the cache, and on a miss mints a token and stores it. Jobs of one worker start
together (a burst of deliveries), so each of them missed the cache and minted its own token for the same
installation and scope: wasted requests against the App's rate limit. Here the first miss of a key mints; the
others wait until it is stored (or, should that mint fail, until WAIT_S has passed, and then mint themselves).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from githubkit.cache import MemCacheStrategy
from githubkit.cache.mem_cache import MemCache

WAIT_S = 10.0  # a mint is one request to GitHub; one that takes longer has most likely failed


class SingleMintCache(MemCache):
    def __init__(self) -> None:
        super().__init__()
        self._minting: dict[str, asyncio.Future[None]] = {}

    async def aget(self, key: str) -> str | None:
        value = self.get(key)
        if value is not None:
            return value
        minting = self._minting.get(key)
        if minting is None or minting.done():
            self._minting[key] = asyncio.get_running_loop().create_future()
            return None  # this caller mints
        try:
            await asyncio.wait_for(asyncio.shield(minting), WAIT_S)
        except TimeoutError:
            self._minting.pop(key, None)
            return None  # the first mint failed or hangs: mint again
        return self.get(key)

    async def aset(self, key: str, value: str, ex: timedelta) -> None:
        self.set(key, value, ex)
        minting = self._minting.pop(key, None)
        if minting is not None and not minting.done():
            minting.set_result(None)


class SingleMintStrategy(MemCacheStrategy):
    """MemCacheStrategy whose storage is a SingleMintCache."""

    def get_cache_storage(self) -> MemCache:
        if self._cache is None:
            self._cache = SingleMintCache()
        return self._cache
