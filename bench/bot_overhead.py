"""Bot-overhead benchmark: what Mull itself adds to one pull request, with a model that answers at once.

    .venv/bin/python bench/bot_overhead.py            (or: make bench)

Real `mull web` and `mull worker` processes against the GitHub double, with the scripted model answering
instantly: each round labels an issue and waits for the critique comment on its pull request. Everything
in between is Mull: webhook, queue, the job's GitHub calls, the repo cache and run tree, the commit and
push, the pull request, the status comment, the critique's diff, prompt and comment. Prints each round,
the median seconds per pull request (also without the agent's and the critique's own runs, however
short) and overhead_ratio, the median over the 3 s budget; target 1.0 or less.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from bench_redis import add_argument, bench_redis
from mull_rig import MAINTAINER, REPO, Rig, rig, wait_until

BUDGET_SECONDS = 3.0


def critique_posted(run: Rig, pr: int) -> bool:
    return any(c.user.login == run.github.bot_login and "mull:critique" in c.body
               for c in run.github.comments(REPO, pr))


def logged(run: Rig, event: str, **fields: object) -> float | None:
    """Wall-clock time of the first worker log line with ``event`` and ``fields``."""
    for at, line in run.log_events(event):
        if all(line.get(k) == v for k, v in fields.items()):
            return at
    return None


def one_pull_request(run: Rig, key: str) -> tuple[float, float]:
    """(seconds from the label to the critique comment, seconds of those in the agent and critique runs)."""
    # The critique's script first: the scripted model plays the first script whose key a request contains, and
    # the critique's prompt shows the note (its key) beside the issue's words.
    run.model.script(f"CRITIQUE-{key}", [{"tool_calls": [{"name": "submit_critique", "arguments": {
        "summary": "Adds a note.", "effort": 1, "risks": [], "security": [], "findings": [], "tests": "none",
        "tests_note": "a note needs no test", "verdict": "pass"}}]}])
    run.model.script(key, [
        {"tool_calls": [{"name": "write_file", "arguments": {"path": "notes/note.md",
                                                             "content": f"CRITIQUE-{key}\n"}}]},
        {"tool_calls": [{"name": "finish", "arguments": {"summary": "Wrote a note.", "not_done": []}}]},
    ])
    issue = run.github.create_issue(REPO, f"Benchmark {key}", key, author=MAINTAINER)
    labeled_at = time.time()
    if run.github.label_issue(REPO, issue.number, "mull", MAINTAINER) != 202:
        raise SystemExit("the receiver did not accept the label")
    pr = wait_until(lambda: next((p.number for p in run.github.pulls(REPO) if p.head_ref == f"mull/issue-"
                                  f"{issue.number}"), None), f"the pull request of #{issue.number}", run)
    wait_until(lambda: critique_posted(run, pr), f"the critique of #{pr}", run)
    done_at = time.time()
    run.settle()
    marks = [logged(run, "agent starting", issue=issue.number), logged(run, "agent finished", issue=issue.number),
             logged(run, "critique starting", pr=pr), logged(run, "critique done", pr=pr)]
    if None in marks:
        raise SystemExit(f"#{issue.number} and #{pr} did not log an agent run and a critique that passed:\n"
                         f"{run.cluster.logs()[-3000:]}")
    agent_started, agent_finished, critique_started, critique_done = marks
    return done_at - labeled_at, agent_finished - agent_started + critique_done - critique_started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="pull requests timed, one after another")
    parser.add_argument("--warmup", type=int, default=1, help="pull requests made first and not timed")
    add_argument(parser)
    args = parser.parse_args()
    with bench_redis(args.redis_url) as (redis_url, where), rig(redis_url) as run:
        print(f"redis: {where}; {args.rounds} pull requests, one at a time, after {args.warmup} to warm up")
        for n in range(args.warmup):
            one_pull_request(run, f"SCRIPT-warmup-{n}")
        rounds = [one_pull_request(run, f"SCRIPT-pr-{n:03d}.") for n in range(args.rounds)]
    for n, (total, runs) in enumerate(rounds):
        print(f"pull request {n + 1}: {total:.2f} s from label to critique comment, {runs:.2f} s of it in the agent "
              f"and critique runs")
    per_pr = statistics.median(total for total, _ in rounds)
    without_runs = statistics.median(total - runs for total, runs in rounds)
    print(f"seconds_per_pr={per_pr:.2f} (without the agent and critique runs: {without_runs:.2f})")
    print(f"overhead_ratio={per_pr / BUDGET_SECONDS:.2f} (target <= 1.0, budget {BUDGET_SECONDS:.0f} s)")
    return 0 if per_pr <= BUDGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
