"""The egress proxy from inside the real sandbox: allowed hosts answer through it, nothing else does.

A command under bubblewrap gets HTTP_PROXY/HTTPS_PROXY pointing at the bridged proxy. A loopback server on the
host, which the operator listed (by a name that resolves to it), answers through the proxy; an unlisted host
is refused with a 403 and counted; the same server reached directly, without the proxy, stays unreachable.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from doubles.http_echo import echo_server
from doubles.sandboxes import SPECS, gateway_socket, needs_bwrap

from worker.agent import bridge
from worker.agent.bwrap import EGRESS_PORT, mull_python
from worker.agent.sandbox import CommandResult, SandboxSpec, gateway_url, run_argv
from worker.egress import EgressPolicy, egress_proxy

PROBE = """
import errno, os, socket, sys, urllib.error, urllib.request
port = sys.argv[1]
print("proxy", os.environ["HTTPS_PROXY"], os.environ["http_proxy"], os.environ["NO_PROXY"])
print(urllib.request.urlopen(f"http://registry.test:{port}/allowed", timeout=10).read().decode().splitlines()[0])
try:
    urllib.request.urlopen(f"http://evil.test:{port}/steal", timeout=10)
except urllib.error.HTTPError as exc:
    print("refused", exc.code, exc.read().decode().strip())
# CONNECT, as an HTTPS client would open its tunnel
tunnel = socket.create_connection(("127.0.0.1", int(os.environ["HTTPS_PROXY"].rsplit(":", 1)[1])), timeout=10)
tunnel.sendall(f"CONNECT registry.test:{port} HTTP/1.1\\r\\n\\r\\n".encode())
head = tunnel.recv(4096)
tunnel.sendall(b"GET /tunnelled HTTP/1.0\\r\\n\\r\\n")
body = b""
while chunk := tunnel.recv(65536):
    body += chunk
print("tunnel", head.split(b"\\r\\n")[0].decode(), body.decode().split("\\r\\n\\r\\n", 1)[1].splitlines()[0])
try:
    socket.create_connection(("127.0.0.1", int(port)), timeout=5).close()
    print("direct CONNECTED")
except OSError as exc:
    print("direct failed:", errno.errorcode.get(exc.errno, exc))
"""


def sandboxed(argv: list[str], cwd: Path, spec: SandboxSpec, policy: EgressPolicy,
              table: dict[str, list[str]]) -> tuple[CommandResult, tuple[tuple[str, int], ...]]:
    async def resolve(host: str, _port: int) -> list[str]:
        return table[host]

    async def main() -> tuple[CommandResult, tuple[tuple[str, int], ...]]:
        async with egress_proxy(policy, resolve) as egress:
            result = await run_argv(argv, cwd, egress.confine(spec), 30)
            return result, egress.blocked()
    return asyncio.run(main())


@pytest.mark.parametrize("spec", SPECS)
def test_a_command_reaches_a_listed_host_through_the_proxy_and_is_refused_the_rest(tmp_path: Path,
                                                                                  spec: SandboxSpec) -> None:
    python, binds = mull_python()
    spec = dataclasses.replace(spec, ro_paths=(*spec.ro_paths, *binds))
    with echo_server() as port:
        policy = EgressPolicy.of([f"registry.test:{port}", "pypi.org"])
        result, blocked = sandboxed([python, "-I", "-c", PROBE, str(port)], tmp_path, spec, policy,
                                    {"registry.test": ["127.0.0.1"]})
    out = result.output
    assert "echo /allowed" in out, out
    assert f"refused 403 Mull's sandbox refused a connection to evil.test:{port}" in out
    assert "tunnel HTTP/1.1 200 Connection established echo /tunnelled" in out
    assert "NO_PROXY" not in out and "localhost,127.0.0.1,::1" in out
    if spec.enabled:
        assert f"proxy http://127.0.0.1:{EGRESS_PORT} http://127.0.0.1:{EGRESS_PORT}" in out
        assert "direct failed: ECONNREFUSED" in out  # the sandbox's loopback is its own
    assert blocked == ((f"evil.test:{port}", 1),)


@needs_bwrap
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_in_the_sandbox_goes_through_the_proxy_for_https_and_http(tmp_path: Path) -> None:
    with echo_server() as port:
        policy = EgressPolicy.of([f"registry.test:{port}"])
        script = (f"curl -sS -m 10 http://registry.test:{port}/via-curl; echo; "
                  f"curl -sS -m 10 https://evil.test/ ; echo \"https exit $?\"; "
                  f"curl -sS -m 10 --noproxy '*' http://127.0.0.1:{port}/ ; echo \"direct exit $?\"")
        result, blocked = sandboxed(["sh", "-c", script], tmp_path, SandboxSpec(enabled=True), policy,
                                    {"registry.test": ["127.0.0.1"]})
    out = result.output
    assert "echo /via-curl" in out, out
    assert "https exit 56" in out and "403" in out  # CONNECT refused: curl reports the proxy's status
    assert "direct exit 7" in out  # could not connect
    assert blocked == (("evil.test:443", 1),)


@needs_bwrap
def test_without_an_egress_proxy_nothing_listens_at_its_port(tmp_path: Path) -> None:
    python, binds = mull_python()
    code = ("import socket, sys\ntry:\n    socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5)\n"
            "    print('OPEN')\nexcept OSError as exc:\n    print('closed', exc.strerror)\n")
    result = asyncio.run(run_argv([python, "-I", "-c", code, str(EGRESS_PORT)], tmp_path,
                                  SandboxSpec(enabled=True, ro_paths=binds), 30))
    assert "closed Connection refused" in result.output, result.output


@needs_bwrap
def test_the_gateway_and_the_egress_proxy_are_bridged_side_by_side(tmp_path: Path) -> None:
    """A CLI agent's sandbox holds both: its model at the gateway's port, the network at the proxy's."""
    python, binds = mull_python()
    code = ("import sys, urllib.request\n"
            "print(urllib.request.urlopen(sys.argv[1] + '/v1/models', timeout=10).read().decode())\n"
            "print(urllib.request.urlopen(f'http://registry.test:{sys.argv[2]}/pkg', timeout=10).read().decode())\n")
    with gateway_socket() as gateway, echo_server() as port:
        spec = SandboxSpec(enabled=True, ro_paths=binds, gateway_socket=gateway)
        result, _blocked = sandboxed([python, "-I", "-c", code, gateway_url(), str(port)], tmp_path, spec,
                                     EgressPolicy.of([f"registry.test:{port}"]), {"registry.test": ["127.0.0.1"]})
    assert "gateway answered /v1/models" in result.output, result.output  # NO_PROXY kept it direct
    assert "echo /pkg" in result.output


@pytest.mark.parametrize("args", [["41414", "/run/gw.sock", "true"], ["41414", "--", "true"],
                                  ["port", "/run/gw.sock", "--", "true"], ["41414", "/run/gw.sock", "--"]])
def test_the_bridge_refuses_a_bad_command_line_with_its_usage(args: list[str]) -> None:
    done = subprocess.run([sys.executable, "-I", "-S", bridge.__file__, *args], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 2 and "usage: bridge.py PORT SOCKET [PORT SOCKET ...] -- ARGV..." in done.stderr
