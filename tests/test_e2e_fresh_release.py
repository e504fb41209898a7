"""End to end: a held draft whose base branch moved with a conflicting change is not handed to a reviewer as
it is. When a review slot frees, Mull merges the base into it in its own git, finds the conflict, and the agent
gets one revision that starts from the merge (markers and all) with the conflicted file named; the pull
request leaves draft only once that revision merges cleanly."""

from __future__ import annotations

import json

import pytest
from doubles.e2e import MAINTAINER, open_pulls, pr_opened, wait_for
from doubles.fixtures import REPO

pytestmark = pytest.mark.e2e

RESOLVED = "def answer():\n    return 42  # CRIT-b, over the base's 43\n"


def critique(key: str) -> list[dict]:
    return [{"tool_calls": [{"name": "submit_critique", "arguments": {
        "summary": f"Fine {key}.", "effort": 1, "risks": [], "security": [], "findings": [],
        "tests": "none", "tests_note": "", "verdict": "pass"}}]}]


def finish(summary: str) -> dict:
    return {"tool_calls": [{"name": "finish", "arguments": {"summary": summary, "not_done": []}}]}


def pull_of(double, issue: int):
    return next((p for p in open_pulls(double) if p.head_ref == f"mull/issue-{issue}"), None)


def test_a_conflicting_base_change_gets_one_revision_and_is_released_only_after(
        mull, github_double, scripted_model) -> None:
    github_double.commit_files(REPO, "main", {".github/mull.yml": "max_awaiting_review: 1\n"}, "one at a time")
    scripted_model.script("AGENT-a", [{"tool_calls": [{"name": "write_file", "arguments": {
        "path": "tasks/a.py", "content": "A = 1  # CRIT-a\n"}}]}, finish("Added a.")])
    scripted_model.script("AGENT-b", [{"tool_calls": [{"name": "edit_file", "arguments": {
        "path": "src/widgets.py", "old": "return 41", "new": "return 42  # CRIT-b"}}]}, finish("Answer 42.")])
    scripted_model.script("CRIT-a", critique("a"))
    scripted_model.script("CRIT-b", critique("b"))
    a = github_double.create_issue(REPO, "Task a", "AGENT-a", author=MAINTAINER).number
    github_double.label_issue(REPO, a, "mull", MAINTAINER)
    wait_for(lambda: (p := pull_of(github_double, a)) and not p.draft, what="a released", cluster=mull)
    b = github_double.create_issue(REPO, "Task b", "AGENT-b", author=MAINTAINER).number
    github_double.label_issue(REPO, b, "mull", MAINTAINER)
    wait_for(lambda: pr_opened(github_double, b) and "stays a draft" in pr_opened(github_double, b).body,
             what="b held as a draft", cluster=mull)
    held_head = github_double.branch_sha(REPO, f"mull/issue-{b}")

    # The base moves on with a change to the line b changed; then a is merged, freeing the slot.
    scripted_model.script("AGENT-b", [
        {"tool_calls": [{"name": "read_file", "arguments": {"path": "src/widgets.py"}}]},
        {"tool_calls": [{"name": "write_file", "arguments": {"path": "src/widgets.py", "content": RESOLVED}}]},
        finish("Resolved the conflict with main.")])
    tip = github_double.commit_files(REPO, "main", {"src/widgets.py": "def answer():\n    return 43\n"},
                                     "someone changes the answer")
    github_double.merge_pull(REPO, pull_of(github_double, a).number, MAINTAINER)

    pull = wait_for(lambda: (p := pull_of(github_double, b)) and not p.draft and p, timeout=120,
                    what="b released after its revision", cluster=mull)
    files = github_double.branch_files(REPO, pull.head_ref)
    assert files["src/widgets.py"] == RESOLVED and files["tasks/a.py"] == "A = 1  # CRIT-a\n"
    history = [c["sha"] for c in github_double.branch_commits(REPO, pull.head_ref)]
    assert held_head in history and tip in history  # merged, not rewritten
    # The revision saw the conflict: the request names the file, its tree held the markers.
    revision = [r for r in scripted_model.requests_for("AGENT-b") if r["turn"] == 1
                and "<<<<<<<" in json.dumps(r["body"])]
    assert revision, "the revision's agent did not start from the conflicted merge"
    asked = json.dumps(revision[0]["body"])
    assert "src/widgets.py" in asked and "conflict" in asked
    first_turns = [r for r in scripted_model.requests_for("AGENT-b") if r["turn"] == 0]
    assert len(first_turns) == 2  # the run and exactly one revision
