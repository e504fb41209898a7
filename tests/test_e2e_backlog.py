"""End to end: the review backlog. Eight labeled issues under the default limits (2 agent runs, 3 pull requests
awaiting review): queued issues show their place, finished work beyond the cap stays draft in order with no
review request, the dashboard issue shows it all, and merging one releases exactly one with one review request."""

from __future__ import annotations

import re

import pytest
from doubles.e2e import MAINTAINER, open_pulls, pr_opened, status_comments, wait_for
from doubles.fixtures import REPO

pytestmark = pytest.mark.e2e

CAP = 3
ISSUES = 8


def agent(key: str) -> list[dict]:
    return [
        # A file per task: merging one must not make the next conflict (that gets a revision before release:
        # tests/test_e2e_fresh_release.py).
        {"sleep": 2.0, "tool_calls": [{"name": "write_file", "arguments": {
            "path": f"tasks/{key}.py", "content": f"ANSWER = 42  # {key}\n"}}]},
        {"tool_calls": [{"name": "finish", "arguments": {"summary": "Answer fixed.", "not_done": []}}]},
    ]


def critique(effort: int) -> list[dict]:
    return [{"tool_calls": [{"name": "submit_critique", "arguments": {
        "summary": "Changes the answer.", "effort": effort, "risks": [], "security": [], "findings": [],
        "tests": "none", "tests_note": "", "verdict": "pass"}}]}]


def ready(double) -> list:
    return [p for p in open_pulls(double) if not p.draft]


def dashboard(double):
    found = [i for i in double.issues(REPO) if i.title == "Mull review queue"]
    assert len(found) <= 1, "one dashboard per repository"
    return found[0] if found else None


def test_eight_issues_cap_three_merge_releases_exactly_one(mull, github_double, scripted_model) -> None:
    mull.start_worker()  # more workers than slots: the limits, not the worker count, hold the runs back
    numbers = []
    for n in range(ISSUES):
        scripted_model.script(f"AGENT-q{n}", agent(f"CRIT-q{n}"))
        scripted_model.script(f"CRIT-q{n}", critique(effort=1 + n % 5))
        numbers.append(github_double.create_issue(REPO, f"Task {n}", f"Please. AGENT-q{n}", author=MAINTAINER).number)
    for number in numbers:
        assert github_double.label_issue(REPO, number, "mull", MAINTAINER) == 202

    def shows_its_place() -> bool:  # two runs take 2 s each: the other six wait, and say how many are ahead
        return any("**Queue:** " in c.body and "ahead of it" in c.body
                   for n in numbers for c in status_comments(github_double, n))
    wait_for(shows_its_place, what="a queued issue showing how many are ahead", cluster=mull)

    def held() -> dict[int, int]:
        """Issue -> its place in the review line, as its status comment says."""
        lines = {n: re.search(r"\*\*Review queue:\*\*.*", status_comments(github_double, n)[0].body)
                 for n in numbers if status_comments(github_double, n)}
        return {n: 0 if "next in line" in line.group(0) else int(re.search(r"(\d+) ahead", line.group(0)).group(1))
                for n, line in lines.items() if line and "stays a draft" in line.group(0)}

    def settled() -> bool:
        assert len(ready(github_double)) <= CAP  # checked at every look, not only at the end
        return (len(open_pulls(github_double)) == ISSUES and len(ready(github_double)) == CAP
                and all(pr_opened(github_double, n) for n in numbers)
                and sorted(held().values()) == [0, 1, 2, 3, 4])
    wait_for(settled, timeout=180, what="3 pull requests ready and 5 held as drafts, in line", cluster=mull)
    places = held()
    nothing_requested = [p for p in open_pulls(github_double) if p.draft]
    assert all(p.requested_reviewers == [] for p in nothing_requested)  # a review request only at release
    assert all(p.requested_reviewers == [MAINTAINER] for p in ready(github_double))
    board = wait_for(lambda: (d := dashboard(github_double)) and "Held as drafts" in d.body and d,
                     what="the dashboard issue", cluster=mull)
    assert "Awaiting review (3 of 3)" in board.body
    assert github_double.issue(REPO, board.number).user.login == github_double.bot_login

    next_issue = next(n for n, place in places.items() if place == 0)
    merged = ready(github_double)[0]
    github_double.merge_pull(REPO, merged.number, MAINTAINER)

    def released() -> bool:
        assert len(ready(github_double)) <= CAP
        return any(p.head_ref == f"mull/issue-{next_issue}" for p in ready(github_double))
    wait_for(released, what="the next held pull request released", cluster=mull)
    wait_for(lambda: sorted(held().values()) == [0, 1, 2, 3], what="the others moving up", cluster=mull)
    assert len(ready(github_double)) == CAP
    assert len([p for p in open_pulls(github_double) if p.draft]) == 4  # exactly one left draft
    requests = [r for r in github_double.requests("POST") if r.path.endswith("/requested_reviewers")]
    assert len(requests) == CAP + 1  # one review request per released pull request, never more
