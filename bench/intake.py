"""Intake benchmark: `mull web` against a bare starlette app that reads the body, in the same run.

    .venv/bin/python bench/intake.py            (or: make bench)

Prints relevant_ratio (issues.labeled with the trigger label: verified, filtered, stored in Redis) and
irrelevant_ratio (issue_comment.created without a command: verified and dropped), each Mull's requests per
second over bare starlette's; targets 0.6 and 0.85. The machine is shared and noisy, so runs are short and
come in pairs (bare then Mull, Mull then bare), and the ratio is the median of the pairs' ratios. Also prints
each server's CPU time per request, which noise from other processes disturbs less than throughput. Uses wrk
when installed, else a Python load generator (bench/http_load.py, less precise); the first line says which.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis
from bench_redis import add_argument, bench_redis
from githubkit import webhooks
from http_load import Delivery, generator, run

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret"
EXAMPLES = ROOT / "tests" / "fixtures" / "github-webhook-examples.json"
TARGETS = {"relevant": 0.6, "irrelevant": 0.85}
BARE_APP = '''
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

async def hook(request):
    await request.body()
    return Response(status_code=202)

app = Starlette(routes=[Route("/webhooks/github", hook, methods=["POST"])])
'''


def payloads() -> dict[str, Delivery]:
    groups = {g["name"]: g for g in json.loads(EXAMPLES.read_text())}
    labeled = next(p for p in groups["issues"]["examples"] if p.get("action") == "labeled")
    labeled = dict(labeled, label={**(labeled.get("label") or {}), "name": "mull"})
    comment = next(p for p in groups["issue_comment"]["examples"] if p.get("action") == "created")
    comment = dict(comment, comment={**comment["comment"], "body": "Thanks, this looks right to me."})
    bodies = {"relevant": ("issues", json.dumps(labeled).encode()),
              "irrelevant": ("issue_comment", json.dumps(comment).encode())}
    return {name: Delivery(event, body, webhooks.sign(SECRET, body)) for name, (event, body) in bodies.items()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_answering(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server on port {port} exited with {process.returncode} while starting")
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit(f"the server on port {port} did not answer within {timeout:.0f} s")


def start_servers(tmp: Path, redis_url: str) -> dict[str, tuple[subprocess.Popen, int]]:
    """Both servers on uvicorn with uvloop and httptools, neither logging per request."""
    (tmp / "bare_app.py").write_text(BARE_APP)
    bare_port, mull_port = free_port(), free_port()
    python = sys.executable
    bare = subprocess.Popen([python, "-m", "uvicorn", "bare_app:app", "--port", str(bare_port), "--no-access-log",
                             "--log-level", "warning", "--loop", "uvloop", "--http", "httptools"],
                            env={**os.environ, "PYTHONPATH": str(tmp)}, cwd=tmp)
    mull_env = {**os.environ, "MULL_WEBHOOK_SECRET": SECRET, "MULL_REDIS_URL": redis_url, "MULL_PORT": str(mull_port),
                "MULL_APP_SLUG": "mull-bench", "MULL_LOG_LEVEL": "WARNING", "MULL_DATA_DIR": str(tmp / "data")}
    mull = subprocess.Popen([str(Path(python).with_name("mull")), "web"], env=mull_env, cwd=tmp)
    servers = {"bare": (bare, bare_port), "mull": (mull, mull_port)}
    for process, port in servers.values():
        wait_answering(port, process)
    return servers


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2, help="length of one load run")
    parser.add_argument("--rounds", type=int, default=7,
                        help="bare/Mull pairs per scenario; the ratio is the median of the pairs' ratios")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--load", choices=("auto", "wrk", "python"), default="auto",
                        help="load generator (auto: wrk when installed)")
    add_argument(parser)
    args = parser.parse_args()
    kind = generator(args.load)
    with bench_redis(args.redis_url) as (redis_url, where), \
            tempfile.TemporaryDirectory(prefix="mull-bench-") as tmp_name:
        print(f"load generator: {kind}{'' if kind == 'wrk' else ' (wrk not used: less precise)'}; "
              f"{args.rounds} rounds x {args.seconds:g} s, {args.connections} connections; redis: {where}")
        servers = start_servers(Path(tmp_name), redis_url)
        try:
            ratios = {}
            for name, delivery in payloads().items():
                rates: dict[str, list[float]] = {"bare": [], "mull": []}
                cpu: dict[str, list[float]] = {"bare": [], "mull": []}
                per_round = []
                for index in range(args.rounds):
                    order = list(servers.items())
                    for server, (process, port) in order if index % 2 == 0 else reversed(order):
                        before = cpu_seconds(process.pid)
                        load = run(kind, port, delivery, args.seconds, args.connections, Path(tmp_name))
                        rates[server].append(load.per_second)
                        cpu[server].append((cpu_seconds(process.pid) - before) / max(load.requests, 1) * 1e6)
                    per_round.append(rates["mull"][-1] / rates["bare"][-1])
                bare, mull = statistics.median(rates["bare"]), statistics.median(rates["mull"])
                ratios[name] = statistics.median(per_round)
                bare_cpu, mull_cpu = statistics.median(cpu["bare"]), statistics.median(cpu["mull"])
                print(f"{name}: bare {bare:,.0f} req/s, mull {mull:,.0f} req/s (runs: bare "
                      f"{[round(x) for x in rates['bare']]}, mull {[round(x) for x in rates['mull']]}); server CPU "
                      f"per request: bare {bare_cpu:.0f} us, mull {mull_cpu:.0f} us "
                      f"(bare/mull {bare_cpu / mull_cpu:.2f})")
            stored = redis.Redis.from_url(redis_url).zcard("arq:queue")
            print(f"deliveries stored by mull during the run: {stored}")
        finally:
            for process, _ in servers.values():
                process.terminate()
                process.wait(10)
    for name, ratio in ratios.items():
        print(f"{name}_ratio={ratio:.2f} (target >= {TARGETS[name]})")
    return 0 if all(ratios[name] >= TARGETS[name] for name in ratios) else 1


if __name__ == "__main__":
    sys.exit(main())
