"""End to end: `/mull` commands in comments, acknowledged with reactions, refused politely, acted on."""

from __future__ import annotations

import re
import time

import pytest
from doubles.e2e import MAINTAINER, READER, answer_script, open_pulls, pr_opened, settle, status_comments, wait_for
from doubles.fixtures import REPO

pytestmark = pytest.mark.e2e


def bot_replies(double, number: int) -> list:
    return [c for c in double.comments(REPO, number)
            if c.user.login == double.bot_login and "mull:status" not in c.body]


def reactions(double, number: int, comment_id: int) -> set[str]:
    comment = next(c for c in double.comments(REPO, number) if c.id == comment_id)
    return {r.content for r in comment.reactions}


def test_retry_reruns_a_finished_issue_as_a_new_revision(mull, github_double, scripted_model) -> None:
    scripted_model.script("SCRIPT-retry", answer_script("SCRIPT-retry"))
    issue = github_double.create_issue(REPO, "Answer 42", "SCRIPT-retry", author=MAINTAINER)
    github_double.label_issue(REPO, issue.number, "mull", MAINTAINER)
    wait_for(lambda: pr_opened(github_double, issue.number), what="first run", cluster=mull)
    scripted_model.script("SCRIPT-retry", [
        {"tool_calls": [{"name": "write_file", "arguments": {"path": "RETRY.md", "content": "again\n"}}]},
        {"tool_calls": [{"name": "finish", "arguments": {"summary": "Retried.", "not_done": []}}]}])
    github_double.comment_as(REPO, issue.number, "Let's try that again.\n\n/mull retry", MAINTAINER)
    comment = [c for c in github_double.comments(REPO, issue.number) if c.user.login == MAINTAINER][-1]
    wait_for(lambda: "rocket" in reactions(github_double, issue.number, comment.id), what="🚀", cluster=mull)
    wait_for(lambda: "revision 2" in status_comments(github_double, issue.number)[0].body
             and pr_opened(github_double, issue.number), what="revision 2", cluster=mull)
    assert "eyes" in reactions(github_double, issue.number, comment.id)
    assert "RETRY.md" in github_double.branch_files(REPO, f"mull/issue-{issue.number}")
    assert len(open_pulls(github_double)) == 1


def test_help_unknown_and_bad_arguments_are_answered_with_an_example(mull, github_double) -> None:
    issue = github_double.create_issue(REPO, "Questions", "", author=MAINTAINER)
    github_double.comment_as(REPO, issue.number, "/mull frobnicate", MAINTAINER)
    github_double.comment_as(REPO, issue.number, "/mull retry now please", MAINTAINER)
    github_double.comment_as(REPO, issue.number, "```\n/mull retry\n```\n> /mull retry", MAINTAINER)
    replies = wait_for(lambda: len(bot_replies(github_double, issue.number)) >= 2 and
                       bot_replies(github_double, issue.number), what="two replies", cluster=mull)
    texts = [r.body for r in replies]
    assert any("`/mull frobnicate` is not a Mull command" in t and "| Command |" in t for t in texts)
    assert any("takes no arguments" in t and "`/mull retry`" in t for t in texts)
    mine = [c for c in github_double.comments(REPO, issue.number) if c.user.login == MAINTAINER]
    wait_for(lambda: all("confused" in reactions(github_double, issue.number, c.id) for c in mine[:2]),
             what="😕 on both", cluster=mull)
    settle(mull, github_double)
    assert reactions(github_double, issue.number, mine[2].id) == set()  # quoted and fenced: not commands
    assert len(bot_replies(github_double, issue.number)) == 2


def test_commands_from_readers_are_refused_and_bots_ignored(mull, github_double) -> None:
    issue = github_double.create_issue(REPO, "Readers", "", author=READER)
    github_double.comment_as(REPO, issue.number, "/mull retry", READER)
    github_double.comment_as(REPO, issue.number, "/mull retry", "dependabot[bot]")
    refusal = wait_for(lambda: bot_replies(github_double, issue.number), what="refusal", cluster=mull)
    assert "@rick" in refusal[0].body and "write or triage access" in refusal[0].body
    settle(mull, github_double)
    assert len(bot_replies(github_double, issue.number)) == 1
    assert not status_comments(github_double, issue.number)


def test_queue_and_stop_a_running_agent_keeps_its_partial_work(mull, github_double, scripted_model) -> None:
    scripted_model.script("SCRIPT-stop", [
        {"tool_calls": [{"name": "write_file", "arguments": {"path": "partial.md", "content": "half\n"}}]},
        {"sleep": 30, "tool_calls": [{"name": "read_file", "arguments": {"path": "README.md"}}]},
    ])
    issue = github_double.create_issue(REPO, "Long job", "SCRIPT-stop", author=MAINTAINER)
    github_double.label_issue(REPO, issue.number, "mull", MAINTAINER)
    wait_for(lambda: len(scripted_model.requests_for("SCRIPT-stop")) >= 2, what="agent mid-run", cluster=mull)
    github_double.comment_as(REPO, issue.number, "/mull queue", MAINTAINER)
    wait_for(lambda: any("working on" in r.body for r in bot_replies(github_double, issue.number)),
             what="queue answer", cluster=mull)
    started = time.monotonic()
    github_double.comment_as(REPO, issue.number, "/mull stop", MAINTAINER)
    stop = [c for c in github_double.comments(REPO, issue.number) if c.user.login == MAINTAINER][-1]
    status = wait_for(lambda: pr_opened(github_double, issue.number), what="stopped run's PR", cluster=mull)
    wait_for(lambda: "rocket" in reactions(github_double, issue.number, stop.id), what="🚀 on stop", cluster=mull)
    assert time.monotonic() - started < 20  # did not wait for the model's 30 s
    assert re.search("stopped by @\\W?maria", status.body)  # quoted in a note: the mention is defused
    assert github_double.branch_files(REPO, f"mull/issue-{issue.number}")["partial.md"] == "half\n"
    github_double.comment_as(REPO, issue.number, "/mull stop", MAINTAINER)
    wait_for(lambda: any("nothing is queued or running" in r.body for r in bot_replies(github_double, issue.number)),
             what="nothing to stop", cluster=mull)
