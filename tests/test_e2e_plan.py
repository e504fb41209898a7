"""End to end: repository configuration and the plan stage (approve waits for /mull go; an unclear issue
gets one question and resumes on the answer); a bad .github/mull.yml stops everything with one comment."""

from __future__ import annotations

import json

import pytest
from doubles.e2e import MAINTAINER, open_pulls, pr_opened, settle, status_comments, wait_for
from doubles.fixtures import REPO

pytestmark = pytest.mark.e2e

PLANNER = "You plan the change"


def plan_turn(question: str | None = None, approach: str = "Return 42 from answer().") -> list[dict]:
    return [{"tool_calls": [{"name": "submit_plan", "arguments": {
        "approach": approach, "files": ["src/widgets.py"], "risks": ["callers expecting 41"], "unclear": [],
        "question": question}}]}]


def agent_turns() -> list[dict]:
    return [
        {"tool_calls": [{"name": "edit_file", "arguments": {
            "path": "src/widgets.py", "old": "return 41", "new": "return 42"}}]},
        {"tool_calls": [{"name": "finish", "arguments": {"summary": "Done as planned.", "not_done": []}}]},
    ]


def plan_comments(double, number: int) -> list:
    return [c for c in double.comments(REPO, number) if c.user.login == double.bot_login and "mull:plan" in c.body]


def test_plan_approve_waits_for_go(mull, github_double, scripted_model) -> None:
    github_double.commit_files(REPO, "main", {".github/mull.yml": "plan: approve\n"}, "Configure Mull")
    scripted_model.script(PLANNER, plan_turn())
    scripted_model.script("AGENT-p1", agent_turns())
    issue = github_double.create_issue(REPO, "Answer should be 42", "AGENT-p1", author=MAINTAINER)
    assert github_double.label_issue(REPO, issue.number, "mull", MAINTAINER) == 202
    plan = wait_for(lambda: plan_comments(github_double, issue.number), what="plan", cluster=mull)[0]
    assert "Return 42 from answer()." in plan.body and "`/mull go`" in plan.body
    wait_for(lambda: "/mull go" in status_comments(github_double, issue.number)[0].body, what="waiting status",
             cluster=mull)
    settle(mull, github_double)
    assert open_pulls(github_double) == [] and not scripted_model.requests_for("AGENT-p1")
    assert "mull:waiting" in github_double.issue(REPO, issue.number).labels

    github_double.comment_as(REPO, issue.number, "/mull go", MAINTAINER)
    wait_for(lambda: pr_opened(github_double, issue.number), what="PR after go", cluster=mull)
    prompt = json.dumps(scripted_model.requests_for("AGENT-p1")[0]["body"]["messages"])
    assert "Return 42 from answer()." in prompt  # the agreed plan went into the agent's prompt
    assert len(plan_comments(github_double, issue.number)) == 1
    assert len(scripted_model.requests_for(PLANNER)) == 1


def test_unclear_issue_gets_one_question_and_resumes_on_the_answer(mull, github_double, scripted_model) -> None:
    github_double.commit_files(REPO, "main", {".github/mull.yml": "plan: comment\n"}, "Configure Mull")
    scripted_model.script("they answered", plan_turn(approach="Return 42, as the author said."))
    scripted_model.script(PLANNER, plan_turn(question="Which value should answer() return?"))
    scripted_model.script("AGENT-p2", agent_turns())
    issue = github_double.create_issue(REPO, "Fix answer", "It is wrong. AGENT-p2", author=MAINTAINER)
    github_double.label_issue(REPO, issue.number, "mull", MAINTAINER)
    plan = wait_for(lambda: plan_comments(github_double, issue.number), what="question", cluster=mull)[0]
    assert "Question for @maria" in plan.body
    wait_for(lambda: "mull:waiting" in github_double.issue(REPO, issue.number).labels, what="waiting label",
             cluster=mull)
    assert open_pulls(github_double) == []

    github_double.comment_as(REPO, issue.number, "It should return 42.", MAINTAINER)
    wait_for(lambda: pr_opened(github_double, issue.number), what="PR after the answer", cluster=mull)
    replan = json.dumps(scripted_model.requests_for("they answered")[0]["body"]["messages"])
    assert "It should return 42." in replan and "Do not ask a question" in replan
    assert "Question for" not in plan_comments(github_double, issue.number)[0].body  # asked once, then planned
    assert "mull:waiting" not in github_double.issue(REPO, issue.number).labels
    assert "return 42" in github_double.branch_files(REPO, f"mull/issue-{issue.number}")["src/widgets.py"]


def test_bad_config_file_gets_one_comment_and_nothing_runs(mull, github_double, scripted_model) -> None:
    github_double.commit_files(REPO, "main", {".github/mull.yml": "plan: comment\nbudgets:\n  steps: many\n"},
                               "Configure Mull badly")
    scripted_model.script("AGENT-p3", agent_turns())
    issue = github_double.create_issue(REPO, "Answer", "AGENT-p3", author=MAINTAINER)
    github_double.label_issue(REPO, issue.number, "mull", MAINTAINER)
    comment = wait_for(lambda: [c for c in github_double.comments(REPO, issue.number)
                                if c.user.login == github_double.bot_login], what="config error", cluster=mull)[0]
    assert ".github/mull.yml" in comment.body and "budgets.steps" in comment.body and "line 3" in comment.body
    settle(mull, github_double)
    assert scripted_model.requests == [] and open_pulls(github_double) == []
    assert len([c for c in github_double.comments(REPO, issue.number)
                if c.user.login == github_double.bot_login]) == 1
