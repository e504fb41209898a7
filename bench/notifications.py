"""Review-backlog benchmark: how many notifications one reviewer gets in a simulated week, against a bot that
pings on every event.

    .venv/bin/python bench/notifications.py

Runs the week simulation (``tests/test_week_simulation.py``): 60 issues labeled over five working days, one
reviewer merging 8 pull requests a day, a review cap of 3, the real receiver, worker, GitHub double and scripted
model, on a fake clock. Counts what reached the reviewer (review requests at release, one digest per
business morning) and every event a ping-on-every-event bot would have announced (labeled, run started, pull
request opened, critique, ready for review, merged). It needs a Redis at 127.0.0.1:6379 or falls back to the
embedded one, like the tests. The last line is the ratio the feature is judged by: notifications / events.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                          "tests/test_week_simulation.py"], cwd=ROOT, capture_output=True, text=True)
    found = re.search(r"reviewer notifications: (\d+) \(review requests (\d+), digests (\d+)\); "
                      r"a bot that pings on every event: (\d+) \((.*?)\); ratio", run.stdout)
    if run.returncode != 0 or not found:
        sys.stdout.write(run.stdout[-4000:] + run.stderr[-2000:])
        print("the week simulation failed", file=sys.stderr)
        return 1
    got, requests, digests, naive, events = found.groups()
    print(f"reviewer notifications in the week: {got} ({requests} review requests, {digests} digests)")
    print(f"a bot that pings on every event:    {naive} ({events})")
    print(f"notifications_ratio={int(got) / int(naive):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
