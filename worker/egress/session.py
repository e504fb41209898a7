"""One run's egress proxy, started around whatever sandboxed commands need the network (setup, the agent).

``egress_proxy`` serves a policy on a fresh unix socket for as long as its block runs; ``Egress.confine`` gives
a sandbox spec that bridges that socket into the sandbox and points the proxy variables at it, and
``Egress.blocked`` is what the proxy refused, for the pull request's report.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import tempfile
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from worker.agent.bwrap import EGRESS_PORT, SandboxSpec
from worker.agent.sandbox import free_port
from worker.egress.policy import EgressPolicy
from worker.egress.proxy import HEAD_LIMIT, EgressProxy, Resolver
from worker.views.sink_address import system_resolver

_LOOPBACK = "localhost,127.0.0.1,::1"  # the gateway's bridge, and servers a command starts itself


def proxy_env(port: int) -> dict[str, str]:
    """The variables curl, pip, npm, cargo, go and Python's urllib read to find a proxy (both spellings:
    tools disagree on case)."""
    url = f"http://127.0.0.1:{port}"
    return {"HTTP_PROXY": url, "HTTPS_PROXY": url, "http_proxy": url, "https_proxy": url,
            "NO_PROXY": _LOOPBACK, "no_proxy": _LOOPBACK}


@dataclass(frozen=True)
class Egress:
    socket: Path  # where the proxy listens on the host
    proxy: EgressProxy

    def confine(self, spec: SandboxSpec) -> SandboxSpec:
        """``spec`` with the proxy bridged in and the proxy variables set; unconfined, on a free host port."""
        port = EGRESS_PORT if spec.enabled else free_port()
        return dataclasses.replace(spec, egress_socket=self.socket, egress_port=port,
                                   env={**spec.env, **proxy_env(port)})

    def blocked(self) -> tuple[tuple[str, int], ...]:
        """Refused ``host:port`` and how often, most often first."""
        return tuple(self.proxy.refused.most_common())


@asynccontextmanager
async def egress_proxy(policy: EgressPolicy, resolve: Resolver | None = None) -> AsyncIterator[Egress]:
    """Serve ``policy`` for the block; every connection still open when it ends is closed."""
    folder = Path(tempfile.mkdtemp(prefix="mull-egress-"))  # short, private: a socket path has 107 bytes at most
    path = folder / "egress.sock"
    proxy = EgressProxy(policy, resolve or system_resolver)
    server = await asyncio.start_unix_server(proxy.handle, str(path), limit=HEAD_LIMIT)
    try:
        yield Egress(path, proxy)
    finally:
        server.close()
        await proxy.stop()
        await server.wait_closed()
        shutil.rmtree(folder, ignore_errors=True)


def merged(*reports: tuple[tuple[str, int], ...]) -> tuple[tuple[str, int], ...]:
    """Refusals of several proxies of one run (setup's, the agent's) as one report, most often first."""
    total: Counter[str] = Counter()
    for report in reports:
        for target, count in report:
            total[target] += count
    return tuple(total.most_common())
