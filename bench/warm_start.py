"""Warm-start benchmark: label → agent start on a large repository Mull has seen before, against a fresh clone.

    .venv/bin/python bench/warm_start.py            (or: make bench)

Builds a repository with many commits and files with ``git fast-import`` (default 12,000 commits over 10,000
files) and serves it from the GitHub double over git's smart HTTP. Real `mull web` and `mull worker`
processes handle a first labeled issue (which fills the repo cache), then label further issues; each time
from the label until the worker logs "agent starting" is timed: webhook, queue, the job's GitHub calls,
the mirror fetch and the run's tree. The baseline, in the same run, is a fresh `git clone` of the same
repository from the same server (the median of three). Prints the median warm start, the clone, and
warm_ratio (warm / clone); targets 1.5 s and 0.05.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_redis import add_argument, bench_redis
from mull_rig import INSTALLATION_ID, MAINTAINER, REPO, Rig, rig, wait_until

TARGET_SECONDS = 1.5
TARGET_RATIO = 0.05
CLONES = 3  # the baseline is the median of this many clones: one clone's time varies by half on a busy machine


def fast_import_stream(commits: int, files: int):  # type: ignore[no-untyped-def]
    """A history of ``commits`` on main: the first adds ``files`` files, each later one edits three of them."""
    def blob(text: str) -> bytes:
        data = text.encode()
        return b"data %d\n%s\n" % (len(data), data)

    lines: dict[int, list[str]] = {n: [f'"""Module {n}."""\n'] + [f"VALUE_{n}_{i} = {i * n}\n" for i in range(40)]
                                   for n in range(files)}

    def path(n: int) -> str:
        return f"pkg{n % 60}/module_{n}.py"

    yield b"reset refs/heads/main\n"
    for number in range(commits):
        changed = range(files) if number == 0 else [(number * 7 + k * 1031) % files for k in range(3)]
        when = 1_600_000_000 + number * 600
        message = f"Change {number}"
        head = (f"commit refs/heads/main\nmark :{number + 1}\nauthor Dev <dev@example.com> {when} +0000\n"
                f"committer Dev <dev@example.com> {when} +0000\ndata {len(message)}\n{message}\n").encode()
        body = [head]
        if number == 0:
            body.append(b"M 100644 inline README.md\n" + blob("# widgets\n"))
        for n in changed:
            if number:
                lines[n].append(f"VALUE_{n}_{len(lines[n])} = {number}\n")
            body.append(f"M 100644 inline {path(n)}\n".encode() + blob("".join(lines[n])))
        yield b"".join(body) + b"\n"


def build_repository(bare: Path, commits: int, files: int) -> float:
    """Replace the double's repository with the generated history, packed as a server keeps it; seconds taken."""
    started = time.monotonic()
    importer = subprocess.Popen(["git", "fast-import", "--force", "--quiet"], stdin=subprocess.PIPE,
                                env={**os.environ, "GIT_DIR": str(bare)})
    assert importer.stdin is not None
    for chunk in fast_import_stream(commits, files):
        importer.stdin.write(chunk)
    importer.stdin.close()
    if importer.wait() != 0:
        raise SystemExit("git fast-import failed")
    subprocess.run(["git", "--git-dir", str(bare), "repack", "-a", "-d", "-q"], check=True)
    return time.monotonic() - started


def fresh_clone(run: Rig, into: Path) -> float:
    """Seconds a plain `git clone` (history and checkout) of the repository takes from the double."""
    token = run.github.mint_token(INSTALLATION_ID)
    import base64

    header = "Authorization: Basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()
    started = time.monotonic()
    subprocess.run(["git", "-c", f"http.extraHeader={header}", "clone", "--quiet", run.github.clone_url(REPO),
                    str(into)], check=True, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    return time.monotonic() - started


def label_and_time(run: Rig, key: str) -> tuple[int, float]:
    """Label a new issue once the last run is done with (its critique, the webhooks it caused); (issue number,
    seconds from the label until its agent started). Waits for the pull request."""
    run.settle()
    run.model.script(key, [
        {"tool_calls": [{"name": "write_file", "arguments": {"path": f"notes/{key}.md", "content": "done\n"}}]},
        {"tool_calls": [{"name": "finish", "arguments": {"summary": "Wrote a note.", "not_done": []}}]},
    ])
    issue = run.github.create_issue(REPO, f"Benchmark {key}", key, author=MAINTAINER)
    labeled_at = time.time()
    if run.github.label_issue(REPO, issue.number, "mull", MAINTAINER) != 202:
        raise SystemExit("the receiver did not accept the label")
    started = wait_until(lambda: [at for at, event in run.agent_starts() if event.get("issue") == issue.number],
                         f"the agent to start on #{issue.number}", run)
    wait_until(lambda: run.pr_opened(issue.number), f"the pull request of #{issue.number}", run)
    return issue.number, started[0] - labeled_at


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commits", type=int, default=12_000)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5, help="warm starts timed (the median is reported)")
    add_argument(parser)
    args = parser.parse_args()
    with bench_redis(args.redis_url) as (redis_url, where), rig(redis_url) as run:
        bare = run.github.state.repo(REPO).path
        built = build_repository(bare, args.commits, args.files)
        size = sum(f.stat().st_size for f in (bare / "objects" / "pack").iterdir()) / 1e6
        print(f"repository: {args.commits} commits, {args.files + 1} files, {size:.0f} MB packed "
              f"(built in {built:.1f} s); redis: {where}")
        clones = [fresh_clone(run, run.scratch / f"fresh-clone-{n}") for n in range(CLONES)]
        clone = statistics.median(clones)
        _, cold = label_and_time(run, "SCRIPT-cold")
        warm = [label_and_time(run, f"SCRIPT-warm-{n:03d}.")[1] for n in range(args.rounds)]
    median = statistics.median(warm)
    print(f"fresh clone: {clone:.2f} s (median of {', '.join(f'{c:.2f}' for c in clones)}); "
          f"first run (cache empty): {cold:.2f} s; warm starts: {', '.join(f'{w:.2f}' for w in warm)} s")
    print(f"warm_start_seconds={median:.2f} (target <= {TARGET_SECONDS})")
    print(f"warm_ratio={median / clone:.3f} (target <= {TARGET_RATIO})")
    return 0 if median <= TARGET_SECONDS and median / clone <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
