"""End to end at scale: three `mull worker` processes on one Redis, 30 labeled issues in two installations.
Every issue is handled exactly once, and no installation ever has more runs going than its limit."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest
from doubles.e2e import MAINTAINER, wait_for
from doubles.fixtures import REPO, SEED_FILES

pytestmark = pytest.mark.e2e

OTHER = "other/tools"
LIMIT = 2  # MULL_INSTALLATION_RUNS default


def agent_turns() -> list[dict]:
    # The first two runs of the busy installation wait for each other: with a limit of two they overlap on
    # any machine; were the limit one, the first would wait out the meeting alone and the overlap stay one.
    return [
        {"sleep": 0.4, "meet": {"match": "SCALE-A-", "count": LIMIT, "timeout": 60},
         "tool_calls": [{"name": "edit_file", "arguments": {
            "path": "src/widgets.py", "old": "return 41", "new": "return 42"}}]},
        {"tool_calls": [{"name": "finish", "arguments": {"summary": "Done.", "not_done": []}}]},
    ]


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    best = current = 0
    for _, step in events:
        current += step
        best = max(best, current)
    return best


def test_thirty_issues_three_workers_two_installations(mull, github_double, scripted_model) -> None:
    github_double.create_repo(OTHER, SEED_FILES)
    github_double.add_installation(888, "other")
    github_double.set_permission(OTHER, MAINTAINER, "write")
    mull.start_worker()
    mull.start_worker()
    scripted_model.script("SCALE", agent_turns())
    issues: list[tuple[str, int, str]] = []
    for repo, count, tag in ((REPO, 20, "A"), (OTHER, 10, "B")):  # the busy installation labels first
        for n in range(count):
            issue = github_double.create_issue(repo, f"Task {tag}{n}", f"SCALE-{tag}-{n}-END", author=MAINTAINER)
            issues.append((repo, issue.number, f"SCALE-{tag}-{n}-END"))
    for repo, number, _ in issues:
        assert github_double.label_issue(repo, number, "mull", MAINTAINER) == 202

    def done() -> bool:
        return all('"phase":"pr-opened"' in (status_comments_in(repo, number) or [None])[0].body
                   if status_comments_in(repo, number) else False for repo, number, _ in issues)

    def status_comments_in(repo: str, number: int) -> list:
        return [c for c in github_double.comments(repo, number)
                if c.user.login == github_double.bot_login and "mull:status" in c.body]

    wait_for(done, timeout=240, what="30 pull requests", cluster=mull)

    windows: dict[str, list[tuple[float, float]]] = defaultdict(list)
    starts: dict[str, list[float]] = defaultdict(list)
    for repo, number, key in issues:
        pulls = [p for p in github_double.pulls(repo) if p.head_ref == f"mull/issue-{number}"]
        assert len(pulls) == 1, (repo, number)
        assert len(status_comments_in(repo, number)) == 1
        mine = [r for r in scripted_model.requests if key in json.dumps(r["body"]["messages"][:2])
                and r["key"] == "SCALE"]
        assert len([r for r in mine if r["turn"] == 0]) == 1, (repo, number)  # the agent ran exactly once
        times = [r["at"] for r in mine]
        windows[repo].append((min(times), max(times)))
        starts[repo].append(min(times))
    for repo in (REPO, OTHER):
        assert max_overlap(windows[repo]) <= LIMIT, repo
    assert max_overlap(windows[REPO]) == LIMIT  # runs did overlap: 12 worker slots, the limit held them to 2
    assert min(starts[OTHER]) < max(starts[REPO])  # the small installation did not wait for the big one
