"""The receiver's HTTP protocol: a response's writes go out in one send, streams still flow, order is kept."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from bot.http_protocol import CoalescingHttpToolsProtocol, CoalescingTransport


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = self.aborted = False

    def write(self, data) -> None:  # type: ignore[no-untyped-def]
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True


def test_writes_of_one_loop_turn_are_sent_together_and_in_order() -> None:
    async def run() -> RecordingTransport:
        inner = RecordingTransport()
        outer = CoalescingTransport(inner, asyncio.get_running_loop())
        outer.write(b"HTTP/1.1 200 OK\r\n\r\n")
        outer.write(b"")
        outer.writelines([b"body", memoryview(b"-more")])
        assert inner.writes == [] and outer.get_write_buffer_size() == 28
        await asyncio.sleep(0)
        outer.write(b"next turn")
        await asyncio.sleep(0)
        return inner

    assert asyncio.run(run()).writes == [b"HTTP/1.1 200 OK\r\n\r\nbody-more", b"next turn"]


def test_close_sends_what_is_pending_first_and_abort_drops_it() -> None:
    async def run() -> tuple[RecordingTransport, RecordingTransport]:
        closing, aborting = RecordingTransport(), RecordingTransport()
        for inner in (closing, aborting):
            outer = CoalescingTransport(inner, asyncio.get_running_loop())
            outer.write(b"last words")
            outer.close() if inner is closing else outer.abort()
        await asyncio.sleep(0)
        return closing, aborting

    closing, aborting = asyncio.run(run())
    assert closing.writes == [b"last words"] and closing.closed
    assert aborting.writes == [] and aborting.aborted


RELEASE = threading.Event()


async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"first|", "more_body": True})
        # The second part waits until the client has the first: a stream must not wait for its end.
        await asyncio.get_running_loop().run_in_executor(None, RELEASE.wait, 10)
        await send({"type": "http.response.body", "body": b"second", "more_body": False})
        return
    body = scope["path"].encode()
    await send({"type": "http.response.start", "status": 202,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def server() -> Iterator[int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, http=CoalescingHttpToolsProtocol, loop="uvloop", lifespan="off",
                            log_level="warning", access_log=False)
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started and time.monotonic() < deadline:
        time.sleep(0.01)
    yield sock.getsockname()[1]
    running.should_exit = True
    thread.join(10)


def test_responses_streams_and_pipelined_requests_arrive_whole(server: int) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{server}") as client:
        assert [client.get(f"/n{i}").text for i in range(3)] == ["/n0", "/n1", "/n2"]
        with client.stream("GET", "/stream") as response:
            chunks = response.iter_raw()
            assert next(chunks) == b"first|"
            RELEASE.set()
            assert b"".join(chunks) == b"second"
    # Two requests in one packet: two answers, in order, on the same connection.
    with socket.create_connection(("127.0.0.1", server)) as raw:
        raw.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        received = b""
        while chunk := raw.recv(65536):
            received += chunk
    assert received.count(b"HTTP/1.1 202") == 2 and received.index(b"\r\n\r\n/a") < received.index(b"\r\n\r\n/b")
