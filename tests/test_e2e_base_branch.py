"""End to end: an issue whose body says ``base: dev`` gets a pull request built from dev's tree and aimed at
dev; a ``base:`` line naming no branch is answered on the issue and runs nothing."""

from __future__ import annotations

import pytest
from doubles.e2e import MAINTAINER, answer_script, open_pulls, pr_opened, settle, status_comments, wait_for
from doubles.fixtures import REPO

pytestmark = pytest.mark.e2e


def test_an_issue_with_a_base_line_gets_a_pull_request_into_that_branch(mull, github_double,
                                                                        scripted_model) -> None:
    dev = github_double.commit_files(REPO, "dev", {"DEV.md": "only on dev\n"}, "dev work", base="main")
    scripted_model.script("SCRIPT-dev", answer_script("SCRIPT-dev"))
    issue = github_double.create_issue(REPO, "Answer 42 on dev", "SCRIPT-dev\n\nbase: dev\n", author=MAINTAINER)
    github_double.label_issue(REPO, issue.number, "mull", MAINTAINER)
    wait_for(lambda: pr_opened(github_double, issue.number), what="PR opened", cluster=mull)
    [pull] = open_pulls(github_double)
    assert pull.base_ref == "dev"
    files = github_double.branch_files(REPO, pull.head_ref)
    assert files["DEV.md"] == "only on dev\n" and "return 42" in files["src/widgets.py"]
    assert dev in [c["sha"] for c in github_double.branch_commits(REPO, pull.head_ref)]


def test_a_base_line_naming_a_missing_branch_is_answered_and_nothing_runs(mull, github_double) -> None:
    issue = github_double.create_issue(REPO, "On a ghost", "base: ghost\n", author=MAINTAINER)
    github_double.label_issue(REPO, issue.number, "mull", MAINTAINER)
    settle(mull, github_double)
    replies = [c.body for c in github_double.comments(REPO, issue.number) if c.user.login == github_double.bot_login]
    assert len(replies) == 1 and "the branch `ghost` does not exist in acme/widgets" in replies[0]
    assert not status_comments(github_double, issue.number) and not open_pulls(github_double)


def test_a_new_base_after_the_pull_request_applies_to_the_next_run(mull, github_double, scripted_model) -> None:
    github_double.commit_files(REPO, "dev", {"DEV.md": "only on dev\n"}, "dev work", base="main")
    scripted_model.script("SCRIPT-later", [
        {"tool_calls": [{"name": "edit_file", "arguments": {
            "path": "src/widgets.py", "old": "return 41", "new": "return 42  # CRIT-later"}}]},
        {"tool_calls": [{"name": "finish", "arguments": {"summary": "Answer 42.", "not_done": []}}]}])
    scripted_model.script("CRIT-later", [{"tool_calls": [{"name": "submit_critique", "arguments": {
        "summary": "Fine.", "effort": 1, "risks": [], "security": [], "findings": [], "tests": "none",
        "tests_note": "", "verdict": "pass"}}]}])
    issue = github_double.create_issue(REPO, "Answer 42", "SCRIPT-later", author=MAINTAINER)
    github_double.label_issue(REPO, issue.number, "mull", MAINTAINER)
    wait_for(lambda: pr_opened(github_double, issue.number), what="first run", cluster=mull)
    [pull] = open_pulls(github_double)
    assert pull.base_ref == "main" and "DEV.md" not in github_double.branch_files(REPO, pull.head_ref)
    github_double.comment_as(REPO, issue.number, "/mull base dev", MAINTAINER)
    reply = wait_for(lambda: [c.body for c in github_double.comments(REPO, issue.number)
                              if c.user.login == github_double.bot_login and "already exists" in c.body],
                     what="the reply", cluster=mull)[0]
    assert f"#{pull.number} already exists" in reply and "next run" in reply
    assert open_pulls(github_double)[0].base_ref == "main"  # nothing changes until then
    github_double.comment_as(REPO, issue.number, "/mull retry", MAINTAINER)
    wait_for(lambda: open_pulls(github_double)[0].base_ref == "dev"
             and "revision 2" in status_comments(github_double, issue.number)[0].body
             and pr_opened(github_double, issue.number), what="the next run on dev", cluster=mull)
    files = github_double.branch_files(REPO, pull.head_ref)
    assert files["DEV.md"] == "only on dev\n" and "return 42" in files["src/widgets.py"]
    assert len(open_pulls(github_double)) == 1
