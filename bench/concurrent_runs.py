"""Concurrent-runs benchmark: the memory one worker needs per agent run while many runs wait on their model.

    .venv/bin/python bench/concurrent_runs.py            (or: make bench)

One real `mull worker` (with `mull web`) against the GitHub double and the scripted model, allowed 20 runs at
once. After one warm-up run (its imports are the worker's, not a run's), the worker's process tree is measured
idle; then 20 issues are labeled and the
model holds each run's first request (it sleeps), so all 20 agents are alive at once, and the tree is
measured again. Prints the resident memory (RSS, summed over the worker and its children) idle and with
the runs, the difference per run, and per_run_ratio, per-run MB over the 60 MB target.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from bench_redis import add_argument, bench_redis
from mull_rig import MAINTAINER, REPO, Rig, rig, wait_until

TARGET_MB = 60.0


def tree_rss_mb(pid: int) -> float:
    """RSS of a process and all its descendants, in MB (from /proc)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return total / 1024


def sampled(pid: int, samples: int = 5) -> float:
    values = []
    for _ in range(samples):
        values.append(tree_rss_mb(pid))
        time.sleep(0.2)
    return statistics.median(values)


def script_run(run: Rig, key: str, sleep: float) -> None:
    first: dict = {"tool_calls": [{"name": "write_file", "arguments": {"path": "notes/note.md", "content": "x\n"}}]}
    if sleep:
        first["sleep"] = sleep
    run.model.script(key, [first, {"tool_calls": [{"name": "finish", "arguments": {
        "summary": "Wrote a note.", "not_done": []}}]}])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--sleep", type=float, default=60, help="seconds the model holds each run's first request")
    parser.add_argument("--warmup", type=int, default=1, help="runs made before the idle worker is measured")
    add_argument(parser)
    args = parser.parse_args()
    files = {"README.md": "# widgets\n", "src/widgets.py": "def answer():\n    return 41\n",
             ".github/mull.yml": f"max_in_flight: {args.runs}\n"}
    with bench_redis(args.redis_url) as (redis_url, where), \
            rig(redis_url, files, MULL_WORKER_JOBS=str(args.runs + 4), MULL_INSTALLATION_RUNS=str(args.runs)) as run:
        worker = run.cluster.workers[0].process
        assert worker is not None
        fresh = sampled(worker.pid)
        for n in range(args.warmup):
            script_run(run, f"SCRIPT-warmup-{n}", 0)
            number = run.github.create_issue(REPO, "Warm-up", f"SCRIPT-warmup-{n}", author=MAINTAINER).number
            run.github.label_issue(REPO, number, "mull", MAINTAINER)
            wait_until(lambda number=number: run.pr_opened(number), "the warm-up run's pull request", run)
            run.settle()
        idle = sampled(worker.pid)
        keys = [f"SCRIPT-run-{n:03d}." for n in range(args.runs)]  # none a prefix of another (matched by substring)
        for key in keys:
            script_run(run, key, args.sleep)
        started = time.monotonic()
        for key in keys:
            issue = run.github.create_issue(REPO, f"Run {key}", key, author=MAINTAINER)
            run.github.label_issue(REPO, issue.number, "mull", MAINTAINER)
        wait_until(lambda: len({r["key"] for r in run.model.requests if r["key"] in keys}) == args.runs,
                   f"{args.runs} agents waiting on the model", run, timeout=max(120, args.sleep))
        all_waiting = time.monotonic() - started
        busy = sampled(worker.pid)
        if time.monotonic() - started > args.sleep:
            raise SystemExit(f"the runs did not all wait on the model at once (that took {all_waiting:.1f} s, "
                             f"more than --sleep {args.sleep:g}): raise --sleep")
    per_run = (busy - idle) / args.runs
    print(f"redis: {where}; worker process tree RSS: fresh {fresh:.0f} MB, idle after {args.warmup} warm-up runs "
          f"{idle:.0f} MB, "
          f"with {args.runs} runs waiting on the model {busy:.0f} MB (all waiting {all_waiting:.1f} s after the "
          f"first label)")
    print(f"against the fresh worker (its first run's imports counted too): {(busy - fresh) / args.runs:.1f} MB "
          "per run")
    print(f"per_run_mb={per_run:.1f} (target < {TARGET_MB:.0f})")
    print(f"per_run_ratio={per_run / TARGET_MB:.2f} (target < 1.0)")
    return 0 if per_run < TARGET_MB else 1


if __name__ == "__main__":
    sys.exit(main())
