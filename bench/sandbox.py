"""Sandbox start-up benchmark: what bubblewrap adds to every command the agent runs.

    .venv/bin/python bench/sandbox.py [--runs N]

Runs `true` N times three ways — unconfined, under bubblewrap, and under bubblewrap with the model gateway's
bridge (a unix socket bound in, Mull's interpreter listening on the loopback port before it starts the
command) — with the exact command line and environment ``worker.agent.sandbox.run_argv`` uses, and prints
p50/p90 of each, the overhead over the unconfined run in ms and the ratio. The goal is a sandbox overhead of
at most 50 ms p50 per command. The processes are timed directly: run_argv notices an exit by polling every
20 ms, which would add the same up-to-20 ms to every row and hide the difference being measured.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from worker.agent.sandbox import SandboxSpec, bwrap_argv, check_bwrap, clean_env  # noqa: E402

GOAL_MS = 50.0


def timings(spec: SandboxSpec, tree: Path, runs: int) -> list[float]:
    env = clean_env(home=str(tree)) if not spec.enabled else clean_env()
    argv = bwrap_argv(["true"], tree, spec, env) if spec.enabled else ["true"]
    taken = []
    for _ in range(runs + 1):  # the first warms the page cache
        started = time.perf_counter()
        done = subprocess.run(argv, cwd=tree, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              start_new_session=True, check=False)
        taken.append((time.perf_counter() - started) * 1000)
        if done.returncode != 0:
            raise SystemExit(f"`true` failed under {spec}: {done.stderr.decode(errors='replace')}")
    return taken[1:]


def quantiles(taken: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(taken, n=10)
    return statistics.median(taken), cuts[8]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    runs = parser.parse_args().runs
    check_bwrap()
    with tempfile.TemporaryDirectory(prefix="mull-bench-") as scratch:
        tree = Path(scratch) / "tree"
        tree.mkdir()
        gateway = socket.socket(socket.AF_UNIX)
        gateway.bind(str(Path(scratch) / "gw.sock"))
        gateway.listen()
        kinds = {
            "unconfined": SandboxSpec(enabled=False),
            "bwrap": SandboxSpec(),
            "bwrap+bridge": SandboxSpec(gateway_socket=Path(scratch) / "gw.sock"),
        }
        results = {name: quantiles(timings(spec, tree, runs)) for name, spec in kinds.items()}
        gateway.close()
    base50, base90 = results["unconfined"]
    print(f"`true`, {runs} runs each        p50 ms   p90 ms   overhead p50 ms   ratio p50")
    for name, (p50, p90) in results.items():
        print(f"{name:<28} {p50:7.1f}  {p90:7.1f}   {p50 - base50:15.1f}   {p50 / base50:8.1f}x")
    overhead = results["bwrap"][0] - base50
    print(f"sandbox_overhead_p50_ms={overhead:.1f} (goal <= {GOAL_MS:.0f})")
    print(f"bridge_overhead_p50_ms={results['bwrap+bridge'][0] - base50:.1f}")
    return 0 if overhead <= GOAL_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
