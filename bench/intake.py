"""Intake benchmark: `mull web` against bare starlette+uvicorn on the same machine, in the same run.

    .venv/bin/python bench/intake.py            (or: make bench)

Prints relevant_ratio (issues.labeled with the trigger label: verified, parsed, stored in Redis) and
irrelevant_ratio (issue_comment.created without a command: verified and dropped), each Mull's requests per
second over bare starlette's. Runs alternate A/B/A/B and the medians are compared, because the machine is
shared and noisy. Uses wrk when installed, else a Python load generator (which measures less precisely).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import redis
from githubkit import webhooks

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret"
EXAMPLES = ROOT / "tests" / "fixtures" / "github-webhook-examples.json"
BARE_APP = '''
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

async def hook(request):
    await request.body()
    return Response(status_code=202)

app = Starlette(routes=[Route("/webhooks/github", hook, methods=["POST"])])
'''
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


def payloads() -> dict[str, tuple[str, bytes]]:
    groups = {g["name"]: g for g in json.loads(EXAMPLES.read_text())}
    labeled = next(p for p in groups["issues"]["examples"] if p.get("action") == "labeled")
    labeled = dict(labeled, label={**(labeled.get("label") or {}), "name": "mull"})
    comment = next(p for p in groups["issue_comment"]["examples"] if p.get("action") == "created")
    comment = dict(comment, comment={**comment["comment"], "body": "Thanks, this looks right to me."})
    return {"relevant": ("issues", json.dumps(labeled).encode()),
            "irrelevant": ("issue_comment", json.dumps(comment).encode())}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"server on {port} did not start")


def start_servers(tmp: Path, redis_url: str) -> tuple[list[subprocess.Popen], int, int]:
    (tmp / "bare_app.py").write_text(BARE_APP)
    bare_port, mull_port = free_port(), free_port()
    python = sys.executable
    env = {**os.environ, "PYTHONPATH": str(tmp)}
    bare = subprocess.Popen([python, "-m", "uvicorn", "bare_app:app", "--port", str(bare_port), "--no-access-log",
                             "--log-level", "warning"], env=env, cwd=tmp)
    mull_env = {**os.environ, "MULL_WEBHOOK_SECRET": SECRET, "MULL_REDIS_URL": redis_url, "MULL_PORT": str(mull_port),
                "MULL_APP_SLUG": "mull-bench", "MULL_LOG_LEVEL": "WARNING", "MULL_DATA_DIR": str(tmp / "data")}
    mull = subprocess.Popen([str(Path(python).with_name("mull")), "web"], env=mull_env, cwd=tmp)
    wait_up(mull_port)
    for _ in range(100):
        try:
            httpx.post(f"http://127.0.0.1:{bare_port}/webhooks/github", content=b"{}", timeout=0.5)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    return [bare, mull], bare_port, mull_port


def run_wrk(port: int, event: str, body_file: Path, signature: str, seconds: int, conns: int, script: Path) -> float:
    env = {**os.environ, "BENCH_BODY": str(body_file), "BENCH_EVENT": event, "BENCH_SIG": signature,
           "BENCH_PREFIX": uuid.uuid4().hex[:8]}
    out = subprocess.run(["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "-s", str(script),
                          f"http://127.0.0.1:{port}"], env=env, capture_output=True, text=True, check=True).stdout
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad:
        raise RuntimeError(f"{bad.group(1)} failed responses on port {port}:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


async def _pyload(port: int, event: str, body: bytes, signature: str, seconds: int, conns: int) -> float:
    done = 0
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=httpx.Limits(max_connections=conns)) as c:
        async def loop() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                r = await c.post("/webhooks/github", content=body, headers={
                    "Content-Type": "application/json", "X-GitHub-Event": event, "X-Hub-Signature-256": signature,
                    "X-GitHub-Delivery": uuid.uuid4().hex})
                if r.status_code >= 300:
                    raise RuntimeError(f"{r.status_code} {r.text}")
                done += 1
        await asyncio.gather(*(loop() for _ in range(conns)))
    return done / seconds


def measure(port: int, event: str, body: bytes, body_file: Path, seconds: int, conns: int, script: Path) -> float:
    signature = webhooks.sign(SECRET, body)
    if shutil.which("wrk"):
        return run_wrk(port, event, body_file, signature, seconds, conns, script)
    return asyncio.run(_pyload(port, event, body, signature, seconds, conns))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5, help="length of one load run")
    parser.add_argument("--rounds", type=int, default=3, help="A/B rounds per scenario (medians are compared)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--redis-url", default=os.environ.get("MULL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/10"))
    args = parser.parse_args()
    client = redis.Redis.from_url(args.redis_url)
    client.ping()
    client.flushdb()
    print(f"load generator: {'wrk' if shutil.which('wrk') else 'python (wrk not installed)'}; "
          f"{args.rounds} rounds x {args.seconds} s, {args.connections} connections")
    with tempfile.TemporaryDirectory(prefix="mull-bench-") as tmp_name:
        tmp = Path(tmp_name)
        script = tmp / "post.lua"
        script.write_text(WRK_SCRIPT)
        processes, bare_port, mull_port = start_servers(tmp, args.redis_url)
        try:
            ratios = {}
            for name, (event, body) in payloads().items():
                body_file = tmp / f"{name}.json"
                body_file.write_bytes(body)
                bare, mull = [], []
                for _ in range(args.rounds):
                    bare.append(measure(bare_port, event, body, body_file, args.seconds, args.connections, script))
                    mull.append(measure(mull_port, event, body, body_file, args.seconds, args.connections, script))
                ratio = statistics.median(mull) / statistics.median(bare)
                ratios[name] = ratio
                print(f"{name}: bare {statistics.median(bare):,.0f} req/s, mull {statistics.median(mull):,.0f} req/s "
                      f"(runs: bare {[round(x) for x in bare]}, mull {[round(x) for x in mull]})")
            stored = client.zcard("arq:queue")
            print(f"deliveries stored by mull during the run: {stored}")
            print(f"relevant_ratio={ratios['relevant']:.2f} (target >= 0.6)")
            print(f"irrelevant_ratio={ratios['irrelevant']:.2f} (target >= 0.8)")
        finally:
            for process in processes:
                process.terminate()
                process.wait(10)
            client.flushdb()
    return 0


if __name__ == "__main__":
    sys.exit(main())
