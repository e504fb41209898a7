"""Warm environments benchmark: a repository's setup restored from the cache against setup run for real.

    .venv/bin/python bench/warm_setup.py [--rounds N]

A Python repository whose ``setup:`` makes a virtualenv and installs a dozen dependencies (small wheels built
here, some depending on others) from a package index served on this host, reached from the sandbox through the
run's egress proxy, as in production (the operator lists the index's exact host:port). Cold: setup runs in a
fresh run tree, and what it made is stored (``worker/trees/env_cache.py``). Warm: a fresh run tree of the same
commit gets the stored environment instead. Both include noting what setup left (``mark_setup``), and a warm
tree must then run the installed console script. Prints the medians and the ratio warm/cold; the goal is at
most 0.1. Commands run under bubblewrap when this machine can, unconfined otherwise (it says which).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from tests.doubles.package_index import NO_ADDRESS, dozen_wheels, host_address, package_index  # noqa: E402
from tests.doubles.seed_repo import seeded_bare  # noqa: E402
from worker.agent.project_commands import run_setup  # noqa: E402
from worker.agent.sandbox import SandboxSpec, SandboxUnavailable, check_bwrap, run_command  # noqa: E402
from worker.egress import EgressPolicy, egress_proxy  # noqa: E402
from worker.trees.env_cache import EnvCache  # noqa: E402
from worker.trees.env_key import env_key, toolchain  # noqa: E402
from worker.trees.repo_cache import init_mirror  # noqa: E402
from worker.trees.run_tree import open_run_tree  # noqa: E402
from worker.trees.tree_commit import base_entries, mark_setup  # noqa: E402

GOAL = 0.1
REPO_ID = 1


def setup_commands(index_url: str, host: str) -> list[str]:
    return ["python3 -m venv .venv",
            f".venv/bin/pip install --quiet --disable-pip-version-check --index-url {index_url} --trusted-host {host} "
            "-r requirements.txt"]


async def one_run(scratch: Path, mirror: Path, envs: EnvCache, commands: list[str], spec: SandboxSpec,
                  policy: EgressPolicy, *, warm: bool) -> float:
    """Seconds from a fresh run tree to a prepared one (setup, or a restore), marks included."""
    async with open_run_tree(scratch / "runs", mirror, "bench", "main") as run:
        tracked = {path: blob.oid for path, blob in (await base_entries(mirror, run.base_sha)).items()}
        key = env_key(commands, tracked, sandboxed=spec.enabled, ro_paths=(), host=toolchain())
        os.sync()  # each run starts on a quiet disk, not behind the writeback of the one before
        started = time.perf_counter()
        if warm:
            restored = await envs.restore(REPO_ID, key, run.tree)
            if not restored.ok:
                raise SystemExit(f"the warm run found no environment: {restored.why}")
            await mark_setup(run)
            seconds = time.perf_counter() - started
            done = await run_command(".venv/bin/dep01-cli && .venv/bin/python -c 'import dep12'", run.tree, spec, 60)
            if done.exit_code != 0:
                raise SystemExit(f"the restored environment does not work:\n{done.output}")
            return seconds
        async with egress_proxy(policy) as egress:
            outcome = await run_setup(commands, run.tree, egress.confine(spec), 600)
        if not outcome.ok:
            raise SystemExit(f"setup failed: {outcome.command} {outcome.how()}\n{outcome.tail}")
        marks = await mark_setup(run)
        stored = await envs.store(REPO_ID, key, run.tree, marks.roots)
        seconds = time.perf_counter() - started
        if not stored.size:
            raise SystemExit(f"the cold run's environment was not stored: {stored.why}")
        return seconds


async def measure(rounds: int, sandboxed: bool, address: str) -> tuple[list[float], list[float]]:
    with tempfile.TemporaryDirectory(prefix="mull-bench-") as folder:
        scratch = Path(folder)
        wheels = scratch / "wheels"
        wheels.mkdir()
        names = dozen_wheels(wheels)
        mirror = seeded_bare(scratch, {"requirements.txt": "".join(f"{name}\n" for name in names),
                                       "app.py": "import dep12\n"}, name="mirror.git")
        await init_mirror(mirror)
        spec = SandboxSpec(enabled=sandboxed)
        cold: list[float] = []
        warm: list[float] = []
        with package_index(wheels, address) as index:
            commands = setup_commands(index.url, index.host)
            policy = EgressPolicy.of([f"{index.host}:{index.port}"])
            for _ in range(rounds):
                envs = EnvCache(scratch / f"envs-{len(cold)}", 1024 * 1024 * 1024)
                cold.append(await one_run(scratch, mirror, envs, commands, spec, policy, warm=False))
                warm.append(await one_run(scratch, mirror, envs, commands, spec, policy, warm=True))
                shutil.rmtree(envs.root)
        return cold, warm


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="cold and warm runs, each (default 5)")
    rounds = parser.parse_args().rounds
    address = host_address()
    if address is None:
        print(f"skipped: {NO_ADDRESS}", file=sys.stderr)
        return 1
    if shutil.which("python3") is None or subprocess.run(["python3", "-c", "import ensurepip"],
                                                         capture_output=True, check=False).returncode:
        print("skipped: the system's python3 cannot make virtualenvs (install python3-venv)", file=sys.stderr)
        return 1
    try:
        check_bwrap()
        sandboxed = True
    except SandboxUnavailable as exc:
        print(f"commands run unconfined: {exc}")
        sandboxed = False
    cold, warm = asyncio.run(measure(rounds, sandboxed, address))
    cold_s, warm_s = statistics.median(cold), statistics.median(warm)
    print(f"setup of a dozen dependencies from an index at {address}, {'bwrap' if sandboxed else 'unconfined'}, "
          f"{rounds} round(s)")
    print(f"cold_seconds={cold_s:.3f} (setup run, environment stored)")
    print(f"warm_seconds={warm_s:.3f} (environment restored)")
    ratio = warm_s / cold_s
    print(f"warm_setup_ratio={ratio:.3f} (target <= {GOAL})")
    return 0 if ratio <= GOAL else 1


if __name__ == "__main__":
    raise SystemExit(main())
