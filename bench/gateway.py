"""Gateway benchmark: one model request direct to the upstream, and the same through the model gateway.

    .venv/bin/python bench/gateway.py            (or: make bench)

The upstream is the scripted model double, started standalone in its own process so it does not share a
CPU lock with the gateway. The gateway runs as it does in the worker: in the client's event loop, on a
unix socket, with a run token. Requests are sequential after a warm-up and alternate direct/gateway, since
the machine is shared and noisy. Prints p50/p90 of non-streamed requests and of streamed time to first
chunk and total, the milliseconds the gateway adds at p50, and the ratios. Goals: at most 5 ms added at
p50 for a plain request; streaming unchanged (time to first chunk within the same few ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot import logs  # noqa: E402
from worker.gateway import ModelGateway  # noqa: E402

KEY = "bench-upstream-key"
ANSWER = "A short answer of about the size a coding agent's tool call has. " * 4
BODY = {"model": "m", "messages": [{"role": "system", "content": "You are a coding agent. " * 40},
                                   {"role": "user", "content": "bench: fix the widget " * 20}]}
ADDED_GOAL_MS = 5.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_model(scripts: Path) -> tuple[subprocess.Popen, str]:
    scripts.write_text(json.dumps({"bench": [{"content": ANSWER}]}))
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "tests.doubles.model_server", "--port", str(port),
                                "--scripts", str(scripts)], cwd=ROOT)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/models", timeout=1).raise_for_status()
            return process, url
        except httpx.HTTPError:
            if process.poll() is not None:
                raise SystemExit("the model double exited while starting") from None
            time.sleep(0.05)
    process.kill()
    raise SystemExit("the model double did not start in 30 s")


async def plain(client: httpx.AsyncClient) -> float:
    started = time.perf_counter()
    response = await client.post("/chat/completions", json=BODY)
    response.raise_for_status()
    return (time.perf_counter() - started) * 1000


async def streamed(client: httpx.AsyncClient) -> tuple[float, float]:
    started = time.perf_counter()
    first = None
    async with client.stream("POST", "/chat/completions", json={**BODY, "stream": True}) as response:
        response.raise_for_status()
        async for _ in response.aiter_raw():
            first = first or time.perf_counter()
    end = time.perf_counter()
    return ((first or end) - started) * 1000, (end - started) * 1000


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def line(name: str, direct: list[float], gateway: list[float]) -> float:
    added = statistics.median(gateway) - statistics.median(direct)
    print(f"{name:<22} direct p50 {pct(direct, 50):6.2f} p90 {pct(direct, 90):6.2f} ms | gateway p50 "
          f"{pct(gateway, 50):6.2f} p90 {pct(gateway, 90):6.2f} ms | added p50 {added:+.2f} ms, "
          f"ratio {statistics.median(gateway) / statistics.median(direct):.2f}")
    return added


async def measure(url: str, root: Path, count: int, warmup: int) -> bool:
    direct = httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {KEY}"}, timeout=30)
    async with ModelGateway(url, KEY, root / "sock" / "model.sock", root / "transcripts") as gateway, \
            gateway.run("bench", "m", steps=10 * (count + warmup), tokens=10**12) as grant, \
            gateway.client(grant, timeout=30) as through, direct:
        results: dict[str, tuple[list[float], list[float]]] = {}

        async def pair(name: str, probe: Callable[[httpx.AsyncClient], Awaitable[float]]) -> None:
            for _ in range(warmup):
                await probe(direct)
                await probe(through)
            a, b = [], []
            for _ in range(count):
                a.append(await probe(direct))
                b.append(await probe(through))
            results[name] = (a, b)

        await pair("plain", plain)
        stream_a: list[tuple[float, float]] = []
        stream_b: list[tuple[float, float]] = []
        for index in range(warmup + count):
            a, b = await streamed(direct), await streamed(through)
            if index >= warmup:
                stream_a.append(a)
                stream_b.append(b)
        usage = grant.usage
    print(f"{count} sequential requests per kind after {warmup} warm-up; gateway counted {usage.requests} "
          f"requests, {usage.total_tokens} tokens")
    added = line("plain request", *results["plain"])
    first = line("stream: first chunk", [a[0] for a in stream_a], [b[0] for b in stream_b])
    line("stream: total", [a[1] for a in stream_a], [b[1] for b in stream_b])
    print(f"added_p50_ms={added:.2f} (goal <= {ADDED_GOAL_MS}); stream_first_chunk_added_p50_ms={first:.2f} "
          f"(goal <= {ADDED_GOAL_MS})")
    return added <= ADDED_GOAL_MS and first <= ADDED_GOAL_MS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args(argv)
    logs.configure("WARNING")  # the gateway logs a line per request; the numbers are the output here
    root = Path(tempfile.mkdtemp(prefix="gw-bench-"))
    process, url = start_model(root / "scripts.json")
    try:
        try:
            import uvloop  # the worker's loop (worker/ops/cli.py)
            runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
        except ImportError:
            runner = asyncio.Runner()
        with runner:
            met = runner.run(measure(url, root, args.requests, args.warmup))
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(root, ignore_errors=True)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
