"""Enqueueing a job is one script that survives a dropped connection: the job is written exactly once, and the
caller is told so, whether the drop came before Redis ran the script or after (its reply lost). arq's own
WATCH/MULTI either raised WatchError (failing the job that enqueued) or answered "already there" for a job it
never wrote."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest
from arq import constants as arq_keys

from bot.jobs import QUEUE, SolveRequest, enqueue_solve
from worker.jobs import queue as job_queue


class CuttingProxy:
    """A TCP proxy to Redis that drops the client's connection at the first command containing ``marker``:
    before forwarding it (``after_reply=False``) or once Redis has answered it, without passing the answer."""

    def __init__(self, target: str, marker: bytes, after_reply: bool) -> None:
        parts = urlsplit(target)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 6379
        self.marker, self.after_reply = marker, after_reply
        self.cuts = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        redis_in, redis_out = await asyncio.open_connection(self.host, self.port)
        try:
            while data := await client_in.read(65536):
                cut = self.marker in data and self.cuts == 0
                if cut and not self.after_reply:
                    self.cuts += 1
                    return
                redis_out.write(data)
                await redis_out.drain()
                reply = await redis_in.read(65536)
                if cut:
                    self.cuts += 1
                    return
                client_out.write(reply)
                await client_out.drain()
        finally:
            client_out.close()
            redis_out.close()


@pytest.mark.parametrize("after_reply", [False, True], ids=["before-redis-ran-it", "reply-lost"])
def test_a_connection_dropped_during_an_enqueue_writes_the_job_once_and_says_so(redis_url: str,
                                                                                after_reply: bool) -> None:
    async def scenario() -> None:
        proxy = CuttingProxy(redis_url, b"EVALSHA", after_reply)
        port = await proxy.start()
        db = urlsplit(redis_url).path or "/0"
        pool = job_queue.pool(f"redis://127.0.0.1:{port}{db}", keep_trying=5)
        request = SolveRequest(1, 55, "o/r", 7, "maria", "guid-1")
        try:
            await pool.ping()
            assert await enqueue_solve(pool, request) is True
            assert proxy.cuts == 1
            assert await pool.zrange(QUEUE, 0, -1) == [b"solve:55:7"]
            assert await pool.exists(arq_keys.job_key_prefix + "solve:55:7")
            assert await enqueue_solve(pool, request) is False  # another caller: arq holds the id
        finally:
            await pool.aclose()
            assert proxy.server is not None
            proxy.server.close()

    asyncio.run(scenario())


def test_a_kept_result_holds_the_id_as_in_arq(redis_url: str) -> None:
    async def scenario() -> None:
        pool = await job_queue.connect(redis_url)
        try:
            await pool.set(arq_keys.result_key_prefix + "solve:55:8", b"kept")
            assert await enqueue_solve(pool, SolveRequest(1, 55, "o/r", 8, "maria", "guid-1")) is False
            assert await pool.zrange(QUEUE, 0, -1) == []
        finally:
            await pool.aclose()

    asyncio.run(scenario())
