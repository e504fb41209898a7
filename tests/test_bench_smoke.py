"""Every benchmark runs in a tiny configuration and prints its ratio line (benchmarks are not tests: no timing is
asserted here, only that each one still runs end to end and reports). Each also stays listed in `make bench` and
the README."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from doubles.package_index import NO_ADDRESS, host_address

ROOT = Path(__file__).resolve().parent.parent
NUMBER = r"\d+\.\d+"

TINY = {
    "intake.py": (["--seconds", "0.5", "--rounds", "1", "--connections", "4", "--load", "python"],
                  [r"^load generator: python", rf"^relevant_ratio={NUMBER} ", rf"^irrelevant_ratio={NUMBER} "]),
    "warm_start.py": (["--commits", "30", "--files", "12", "--rounds", "1"],
                      [rf"^warm_start_seconds={NUMBER} ", rf"^warm_ratio={NUMBER} "]),
    "bot_overhead.py": (["--rounds", "1", "--warmup", "0"],
                        [rf"^seconds_per_pr={NUMBER} ", rf"^overhead_ratio={NUMBER} "]),
    # The runs must all be waiting on the model together: a loaded machine (make test runs three at once) needs time.
    "concurrent_runs.py": (["--runs", "2", "--sleep", "12", "--warmup", "0"],
                           [rf"^per_run_mb=-?{NUMBER} ", rf"^per_run_ratio=-?{NUMBER} "]),
    "warm_setup.py": (["--rounds", "1"], [rf"^cold_seconds={NUMBER} ", rf"^warm_setup_ratio={NUMBER} "]),
}
NO_REDIS = {"warm_setup.py"}  # a benchmark of files and sandboxes: it takes no --redis-url


@pytest.mark.parametrize("script", sorted(TINY))
def test_the_benchmark_runs_and_prints_its_ratio(script: str, redis_url: str) -> None:
    arguments, lines = TINY[script]
    if script == "warm_setup.py" and host_address() is None:
        pytest.skip(NO_ADDRESS)
    redis = [] if script in NO_REDIS else ["--redis-url", redis_url]
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), *arguments, *redis],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    # 1 means a target was missed, which a tiny configuration may; a crash prints a traceback.
    assert done.returncode in (0, 1) and "Traceback" not in done.stderr, done.stdout + done.stderr[-3000:]
    for line in lines:
        assert re.search(line, done.stdout, re.MULTILINE), f"{script} did not print {line}:\n{done.stdout}"


def test_a_database_holding_other_keys_is_refused(redis_url: str) -> None:
    import redis

    redis.Redis.from_url(redis_url).set("someone-elses", "data")
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "bot_overhead.py"), "--redis-url", redis_url],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "holds keys a benchmark did not write" in done.stderr
    assert redis.Redis.from_url(redis_url).get("someone-elses") == b"data"


def test_every_benchmark_is_in_make_bench_and_the_readme() -> None:
    makefile = (ROOT / "Makefile").read_text()
    readme = (ROOT / "README.md").read_text()
    for script in sorted(TINY):
        assert f"bench/{script}" in makefile.split("bench: ", 1)[1].split("\n\n", 1)[0], script
        assert f"bench/{script}" in readme.split("### Benchmarks", 1)[1].split("\n## ", 1)[0], script
