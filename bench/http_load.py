"""HTTP load for the benchmarks: wrk when installed, else a small Python generator on raw sockets.

The Python generator keeps ``connections`` keep-alive connections busy with one request at a time each,
the way wrk does, and spends little per request (prebuilt bytes, no HTTP library), so on a machine without
wrk it still loads the server rather than itself. It is less precise than wrk: the output names which ran.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

WRK_SCRIPT = '''
wrk.method = "POST"
wrk.body = io.open(os.getenv("BENCH_BODY"), "rb"):read()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-GitHub-Event"] = os.getenv("BENCH_EVENT")
wrk.headers["X-Hub-Signature-256"] = os.getenv("BENCH_SIG")
local n = 0
local prefix = os.getenv("BENCH_PREFIX") .. tostring(math.random(1, 1000000000)) .. "-"
request = function()
  n = n + 1
  wrk.headers["X-GitHub-Delivery"] = prefix .. n
  return wrk.format(nil, "/webhooks/github")
end
'''


@dataclass(frozen=True)
class Delivery:
    """What every request of one load run carries; each gets its own X-GitHub-Delivery."""

    event: str
    body: bytes
    signature: str


@dataclass(frozen=True)
class Load:
    requests: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


def generator(choice: str = "auto") -> str:
    """'wrk' or 'python': ``auto`` picks wrk when it is on PATH."""
    if choice == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    if choice == "wrk" and not shutil.which("wrk"):
        raise SystemExit("--load wrk: wrk is not installed (apt-get install wrk), or use --load python")
    return choice


def run(kind: str, port: int, delivery: Delivery, seconds: float, connections: int, scratch: Path) -> Load:
    """Post ``delivery`` to ``/webhooks/github`` for ``seconds``; raises on any answer outside 2xx."""
    if kind == "wrk":
        return _wrk(port, delivery, seconds, connections, scratch)
    return asyncio.run(_python(port, delivery, seconds, connections))


def _wrk(port: int, delivery: Delivery, seconds: float, connections: int, scratch: Path) -> Load:
    script, body = scratch / "post.lua", scratch / f"body-{os.getpid()}.json"
    script.write_text(WRK_SCRIPT)
    body.write_bytes(delivery.body)
    env = {**os.environ, "BENCH_BODY": str(body), "BENCH_EVENT": delivery.event, "BENCH_SIG": delivery.signature,
           "BENCH_PREFIX": uuid.uuid4().hex[:8]}
    # wrk takes whole seconds; its threads share the machine with the server, so two at most.
    out = subprocess.run(["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
                          "-s", str(script), f"http://127.0.0.1:{port}"],
                         env=env, capture_output=True, text=True, check=True).stdout
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad:
        raise RuntimeError(f"{bad.group(1)} failed responses on port {port}:\n{out}")
    done = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    if not done:
        raise RuntimeError(f"wrk printed no request count:\n{out}")
    taken = float(done.group(2)) / (1000 if done.group(3) == "ms" else 1)
    return Load(int(done.group(1)), taken)


async def _python(port: int, delivery: Delivery, seconds: float, connections: int) -> Load:
    head = (f"POST /webhooks/github HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"X-GitHub-Event: {delivery.event}\r\nX-Hub-Signature-256: {delivery.signature}\r\n"
            f"Content-Length: {len(delivery.body)}\r\nX-GitHub-Delivery: ").encode()
    prefix = uuid.uuid4().hex[:12]
    started = time.monotonic()
    deadline = started + seconds
    counts = await asyncio.gather(*(_connection(port, head + f"{prefix}-{c}-".encode(), delivery.body, deadline)
                                    for c in range(connections)))
    return Load(sum(counts), time.monotonic() - started)


async def _connection(port: int, head: bytes, body: bytes, deadline: float) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    done = 0
    try:
        while time.monotonic() < deadline:
            writer.write(head + str(done).encode() + b"\r\n\r\n" + body)
            answer = await reader.readuntil(b"\r\n\r\n")
            status = int(answer[9:12])
            length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", answer)
            payload = await reader.readexactly(int(length.group(1))) if length else b""
            if not 200 <= status < 300:
                raise RuntimeError(f"HTTP {status} on port {port}: {payload[:300]!r}")
            done += 1
    finally:
        writer.close()
    return done
