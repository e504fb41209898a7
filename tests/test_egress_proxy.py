"""The egress proxy against a real HTTP server on loopback: what it lets through, what it refuses and counts.

Names resolve through a stand-in resolver (the proxy's own lookup is its one injected edge), so a listed name
can be made to resolve to loopback, a private network or the metadata address.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from doubles.http_echo import echo_server

from worker.egress import EgressPolicy, egress_proxy
from worker.egress import proxy as proxy_module


def resolver(table: dict[str, list[str]], calls: list[str] | None = None) -> Callable[[str, int], Awaitable[list[str]]]:
    async def resolve(host: str, _port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        if host not in table:
            raise OSError(f"{host}: no such host")
        return table[host]
    return resolve


async def exchange(socket: Path, data: bytes) -> bytes:
    """Send ``data`` to the proxy and read its answer to the end."""
    reader, writer = await asyncio.open_unix_connection(str(socket))
    writer.write(data)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return answer


def get(url: str, *headers: str) -> bytes:
    return (f"GET {url} HTTP/1.1\r\nHost: ignored\r\n" + "".join(f"{h}\r\n" for h in headers) + "\r\n").encode()


def run(policy: EgressPolicy, table: dict[str, list[str]], body: Callable[[Any], Awaitable[None]],
        calls: list[str] | None = None) -> Any:
    async def main() -> Any:
        async with egress_proxy(policy, resolver(table, calls)) as egress:
            await body(egress)
            return egress
    return asyncio.run(main())


def test_a_listed_loopback_server_answers_through_plain_http_and_connect() -> None:
    with echo_server() as port:
        policy = EgressPolicy.of([f"127.0.0.1:{port}", f"registry.test:{port}"])

        async def body(egress: Any) -> None:
            plain = await exchange(egress.socket, get(f"http://127.0.0.1:{port}/simple?x=1", "Proxy-Authorization: "
                                                      "Basic c2VjcmV0", "Proxy-Connection: keep-alive"))
            assert plain.startswith(b"HTTP/1.0 200") and b"echo /simple?x=1" in plain
            assert f"Host: 127.0.0.1:{port}".encode() in plain and b"ignored" not in plain
            assert b"Proxy-" not in plain.split(b"\r\n\r\n", 1)[1]  # never passed on
            named = await exchange(egress.socket, get(f"http://registry.test:{port}/pkg"))
            assert named.startswith(b"HTTP/1.0 200") and b"echo /pkg" in named

            reader, writer = await asyncio.open_unix_connection(str(egress.socket))
            writer.write(f"CONNECT registry.test:{port} HTTP/1.1\r\nHost: registry.test:{port}\r\n\r\n".encode())
            assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 200 Connection established\r\n\r\n"
            writer.write(b"GET /tunnelled HTTP/1.0\r\n\r\n")
            tunnelled = await asyncio.wait_for(reader.read(), 10)
            assert b"echo /tunnelled" in tunnelled
            writer.close()

        egress = run(policy, {"registry.test": ["127.0.0.1"]}, body)
    assert egress.blocked() == ()


def test_an_unlisted_host_gets_a_403_saying_how_to_allow_it_and_is_counted() -> None:
    with echo_server() as port:
        policy = EgressPolicy.of([f"127.0.0.1:{port}", "pypi.org"], ["pypi.org"])

        async def body(egress: Any) -> None:
            refused = await exchange(egress.socket, get(f"http://evil.test:{port}/steal"))
            assert refused.startswith(b"HTTP/1.1 403 Forbidden")
            text = refused.decode()
            assert f"refused a connection to evil.test:{port}" in text
            assert f"add `evil.test:{port}` to MULL_SANDBOX_ALLOW_HOSTS" in text
            tunnel = await exchange(egress.socket, f"CONNECT evil.test:{port} HTTP/1.1\r\n\r\n".encode())
            assert tunnel.startswith(b"HTTP/1.1 403")
            # The operator lists it, this repository's network.allow does not: the repository can allow it.
            narrowed = await exchange(egress.socket, get(f"http://127.0.0.1:{port}/"))
            assert b"403" in narrowed.split(b"\r\n")[0] and b"`network.allow`" in narrowed

        egress = run(policy, {}, body)
    assert egress.blocked() == ((f"evil.test:{port}", 2), (f"127.0.0.1:{port}", 1))


@pytest.mark.parametrize(("address", "kind"), [("127.0.0.1", "loopback"), ("10.1.2.3", "private"),
                                               ("169.254.169.254", "link-local"), ("::ffff:127.0.0.1", "loopback")])
def test_a_name_resolving_to_a_non_public_address_is_refused_unless_the_operator_listed_it_exactly(
        address: str, kind: str) -> None:
    with echo_server() as port:
        # Listed through a wildcard by the operator, and exactly by the repository: neither is enough.
        policy = EgressPolicy.of([f"*.corp.test:{port}"], [f"db.corp.test:{port}"])

        async def body(egress: Any) -> None:
            refused = await exchange(egress.socket, get(f"http://db.corp.test:{port}/"))
            assert refused.startswith(b"HTTP/1.1 403")
            assert b"db.corp.test resolves to " in refused and f", a {kind} address".encode() in refused
            assert b"lists exactly (not through a wildcard) in MULL_SANDBOX_ALLOW_HOSTS" in refused
            tunnel = await exchange(egress.socket, f"CONNECT db.corp.test:{port} HTTP/1.1\r\n\r\n".encode())
            assert tunnel.startswith(b"HTTP/1.1 403")

        egress = run(policy, {"db.corp.test": [address]}, body)
    assert egress.blocked() == ((f"db.corp.test:{port}", 2),)


def test_one_private_answer_among_public_ones_refuses_the_host() -> None:
    policy = EgressPolicy.of(["*.example.org"])

    async def body(egress: Any) -> None:
        refused = await exchange(egress.socket, get("http://cdn.example.org/"))
        assert refused.startswith(b"HTTP/1.1 403") and b"10.0.0.7, a private address" in refused

    run(policy, {"cdn.example.org": ["93.184.216.34", "10.0.0.7"]}, body)


def test_an_unlisted_address_literal_is_refused_before_any_lookup() -> None:
    calls: list[str] = []
    policy = EgressPolicy.of(["pypi.org"])

    async def body(egress: Any) -> None:
        for target in ("169.254.169.254:80", "127.0.0.1:6379", "[::1]:443"):
            refused = await exchange(egress.socket, f"CONNECT {target} HTTP/1.1\r\n\r\n".encode())
            assert refused.startswith(b"HTTP/1.1 403"), target

    egress = run(policy, {}, body, calls)
    assert calls == []
    assert dict(egress.blocked()) == {"169.254.169.254:80": 1, "127.0.0.1:6379": 1, "[::1]:443": 1}


def test_the_host_is_resolved_once_and_the_checked_address_is_the_one_connected() -> None:
    """DNS rebinding: a second lookup could answer differently; there is none."""
    calls: list[str] = []
    with echo_server() as port:
        policy = EgressPolicy.of([f"registry.test:{port}"])

        async def body(egress: Any) -> None:
            answer = await exchange(egress.socket, get(f"http://registry.test:{port}/once"))
            assert b"echo /once" in answer

        run(policy, {"registry.test": ["127.0.0.1"]}, body, calls)
    assert calls == ["registry.test"]


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"GET / HTTP/1.1\r\nHost: pypi.org\r\n\r\n", b"400"),  # origin form: not a proxy request
    (b"GET https://pypi.org/ HTTP/1.1\r\n\r\n", b"400"),  # https without CONNECT
    (b"GET ftp://pypi.org/ HTTP/1.1\r\n\r\n", b"400"),
    (b"CONNECT pypi.org HTTP/1.1\r\n\r\n", b"400"),  # no port
    (b"CONNECT pypi.org:99999 HTTP/1.1\r\n\r\n", b"400"),
    (b"CONNECT user@pypi.org:443 HTTP/1.1\r\n\r\n", b"400"),
    (b"CONNECT *.pypi.org:443 HTTP/1.1\r\n\r\n", b"400"),
    (b"GET http://pypi.org/\nInjected: 1 HTTP/1.1\r\n\r\n", b"400"),
    (b"HELLO\r\n\r\n", b"400"),
    (b"GET http://pypi.org/ HTTP/1.1\r\nX: " + b"a" * 20_000 + b"\r\n\r\n", b"431"),
])
def test_malformed_requests_are_answered_with_an_error_and_not_counted(request_bytes: bytes, status: bytes) -> None:
    policy = EgressPolicy.of(["pypi.org"])

    async def body(egress: Any) -> None:
        answer = await exchange(egress.socket, request_bytes)
        assert answer.split(b"\r\n")[0].split(b" ")[1] == status, answer[:200]

    egress = run(policy, {}, body)
    assert egress.blocked() == ()


def test_a_name_that_does_not_resolve_is_a_502_not_a_refusal() -> None:
    async def body(egress: Any) -> None:
        answer = await exchange(egress.socket, get("http://nowhere.example.org/"))
        assert answer.startswith(b"HTTP/1.1 502") and b"cannot resolve nowhere.example.org" in answer

    assert run(EgressPolicy.of(["*.example.org"]), {}, body).blocked() == ()


def test_counts_remember_a_bounded_number_of_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(proxy_module, "MAX_HOSTS", 3)

    async def body(egress: Any) -> None:
        for number in range(6):
            await exchange(egress.socket, f"CONNECT host{number}.test:443 HTTP/1.1\r\n\r\n".encode())
        await exchange(egress.socket, b"CONNECT host0.test:443 HTTP/1.1\r\n\r\n")

    egress = run(EgressPolicy.of([]), {}, body)
    assert dict(egress.blocked()) == {"host0.test:443": 2, "host1.test:443": 1, "host2.test:443": 1,
                                      "other hosts": 3}


def test_leaving_the_block_closes_open_tunnels_and_the_socket() -> None:
    with echo_server() as port:
        policy = EgressPolicy.of([f"127.0.0.1:{port}"])

        async def main() -> tuple[bytes, Path]:
            async with egress_proxy(policy, resolver({})) as egress:
                reader, writer = await asyncio.open_unix_connection(str(egress.socket))
                writer.write(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
                await reader.readuntil(b"\r\n\r\n")
            rest = await asyncio.wait_for(reader.read(), 10)  # EOF, not a hang
            writer.close()
            return rest, egress.socket

        rest, socket = asyncio.run(main())
    assert rest == b"" and not socket.exists()


def test_connections_beyond_the_limit_are_turned_away(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(proxy_module, "MAX_CONNECTIONS", 2)
    with echo_server() as port:
        policy = EgressPolicy.of([f"127.0.0.1:{port}"])

        async def body(egress: Any) -> None:
            held = []
            for _ in range(2):
                reader, writer = await asyncio.open_unix_connection(str(egress.socket))
                writer.write(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
                await reader.readuntil(b"\r\n\r\n")
                held.append(writer)
            answer = await exchange(egress.socket, f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
            assert answer.startswith(b"HTTP/1.1 503") and b"allows 2 connections at once" in answer
            for writer in held:
                writer.close()

        run(policy, {}, body)


def test_a_client_that_never_finishes_its_request_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(proxy_module, "HEAD_SECONDS", 0.2)

    async def body(egress: Any) -> None:
        answer = await exchange(egress.socket, b"CONNECT pypi.org:443 HTTP/1.1\r\n")  # no blank line, ever
        assert answer.startswith(b"HTTP/1.1 408")

    run(EgressPolicy.of(["pypi.org"]), {}, body)

