"""End to end: the critique chain. One critique per head commit, verdicts that gate readiness, a bounded
fix round, review-driven revisions after a quiet period, failing checks, and critiques that fail cleanly."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from doubles.e2e import MAINTAINER, open_pulls, pr_opened, settle, status_comments, wait_for
from doubles.fixtures import REPO

pytestmark = pytest.mark.e2e


def agent(key: str, line: str = "return 42") -> list[dict]:
    """Edits the answer; ``key`` lands in the diff so a critique script can be keyed on it."""
    return [
        {"tool_calls": [{"name": "edit_file", "arguments": {
            "path": "src/widgets.py", "old": "return 41", "new": f"{line}  # {key}"}}]},
        {"tool_calls": [{"name": "finish", "arguments": {"summary": "Answer fixed.", "not_done": []}}]},
    ]


def critique(verdict: str, findings: list[dict] | None = None, summary: str = "Changes the answer.") -> list[dict]:
    return [{"tool_calls": [{"name": "submit_critique", "arguments": {
        "summary": summary, "effort": 2, "risks": [], "security": [], "findings": findings or [],
        "tests": "none", "tests_note": "no test touches answer()", "verdict": verdict}}]}]


FINDING_IN_DIFF = {"path": "src/widgets.py", "start_line": 2, "end_line": 2, "severity": "medium",
                   "title": "Magic number", "why": "42 is unexplained.", "suggestion": "Name the constant."}
FINDING_OUTSIDE = {"path": "README.md", "start_line": 1, "end_line": 1, "severity": "low",
                   "title": "README not updated", "why": "Docs still describe 41.", "suggestion": "Update it."}


def critique_comments(double, pr: int) -> list:
    return [c for c in double.comments(REPO, pr) if c.user.login == double.bot_login and "mull:critique" in c.body]


def start(double, model, key: str) -> tuple[int, int]:
    issue = double.create_issue(REPO, f"Answer 42 {key}", f"Please. AGENT-{key}", author=MAINTAINER)
    assert double.label_issue(REPO, issue.number, "mull", MAINTAINER) == 202
    return issue.number, 0


def mull_commits(double, issue: int) -> list[dict]:
    """Commits on the issue's branch that are not on main."""
    on_main = {c["sha"] for c in double.branch_commits(REPO, "main")}
    return [c for c in double.branch_commits(REPO, f"mull/issue-{issue}") if c["sha"] not in on_main]


def pull_number(double, issue: int) -> int:
    return next(p.number for p in open_pulls(double) if p.head_ref == f"mull/issue-{issue}")


def rerun_critique(redis_url: str, repo_id: int, pr: int, sha: str) -> None:
    """Enqueue the critique job again under a fresh id, as a rerun after arq dropped its result would."""
    from bot.jobs import CRITIQUE_PR, CritiqueRequest
    from worker.jobs.queue import connect

    async def enqueue() -> None:
        pool = await connect(redis_url)
        await pool.enqueue_job(CRITIQUE_PR, CritiqueRequest(installation_id=777, repo_id=repo_id, repo=REPO, pr=pr,
                                                            head_sha=sha), _job_id=f"rerun-{sha}")
        await pool.aclose()

    asyncio.run(enqueue())


def test_one_critique_per_head_edited_in_place_with_inline_comments_on_diff_lines(
        mull, github_double, scripted_model, redis_url) -> None:
    scripted_model.script("AGENT-c1", agent("CRIT-c1"))
    scripted_model.script("HUMAN-c1", critique("pass", summary="Second look."))
    scripted_model.script("CRIT-c1", critique("pass", [FINDING_IN_DIFF, FINDING_OUTSIDE]))
    issue, _ = start(github_double, scripted_model, "c1")
    wait_for(lambda: pr_opened(github_double, issue), what="PR", cluster=mull)
    pr = pull_number(github_double, issue)
    wait_for(lambda: critique_comments(github_double, pr), what="critique", cluster=mull)
    # the same pull_request.opened delivered three more times, and the job id reused: still one critique
    opened = github_double.wait_for_delivery("pull_request", "opened")[0]
    for _ in range(3):
        github_double.deliver("pull_request", opened.payload)
    rerun_critique(redis_url, opened.payload["repository"]["id"], pr, opened.payload["pull_request"]["head"]["sha"])
    wait_for(lambda: "already critiqued" in mull.logs(), what="the rerun to finish", cluster=mull)
    settle(mull, github_double)
    comments = critique_comments(github_double, pr)
    assert len(comments) == 1 and len(scripted_model.requests_for("CRIT-c1")) == 1
    body = comments[0].body
    assert "Magic number" in body and "README not updated" in body and "2/5" in body
    review_comments = github_double.review_comments(REPO, pr)
    assert [(c.path, c.line) for c in review_comments] == [("src/widgets.py", 2)]  # README:1 is not in the diff
    wait_for(lambda: not github_double.pulls(REPO)[0].draft, what="ready for review", cluster=mull)
    assert f"Critique of #{pr}: **pass**" in status_comments(github_double, issue)[0].body
    metrics = httpx.get(mull.url + "/metrics").text
    assert 'mull_runs_total{outcome="pass",stage="critique"} 1.0' in metrics
    assert 'mull_runs_total{outcome="pushed",stage="implement"} 1.0' in metrics
    assert "mull_prs_awaiting_review 1.0" in metrics

    # A human pushes: the same comment is edited for the new head.
    github_double.push_as(REPO, f"mull/issue-{issue}", {"NOTES.md": "HUMAN-c1\n"}, MAINTAINER)
    wait_for(lambda: "Second look." in critique_comments(github_double, pr)[0].body, what="re-critique",
             cluster=mull)
    assert len(critique_comments(github_double, pr)) == 1
    assert len(critique_comments(github_double, pr)[0].history) >= 1


def test_fix_verdict_runs_one_revision_then_hands_over(mull, github_double, scripted_model) -> None:
    scripted_model.script("automatic critique of this pull request found", [
        {"tool_calls": [{"name": "write_file", "arguments": {"path": "CONSTANTS.md", "content": "FIXED-c2\n"}}]},
        {"tool_calls": [{"name": "finish", "arguments": {"summary": "Named it.", "not_done": []}}]}])
    scripted_model.script("FIXED-c2", critique("fix", [FINDING_IN_DIFF], summary="Still unexplained."))
    scripted_model.script("CRIT-c2", critique("fix", [FINDING_IN_DIFF]))
    scripted_model.script("AGENT-c2", agent("CRIT-c2"))
    issue, _ = start(github_double, scripted_model, "c2")
    wait_for(lambda: pr_opened(github_double, issue), what="PR", cluster=mull)
    pr = pull_number(github_double, issue)
    wait_for(lambda: critique_comments(github_double, pr) and
             "Still unexplained." in critique_comments(github_double, pr)[0].body, timeout=90,
             what="second critique", cluster=mull)
    commits = mull_commits(github_double, issue)
    assert len(commits) == 2 and "address the critique's findings" in commits[0]["message"]
    body = critique_comments(github_double, pr)[0].body
    assert "used up" in body and "Magic number" in body  # handed over with the finding still listed
    wait_for(lambda: not github_double.pulls(REPO)[0].draft, what="handed to humans", cluster=mull)
    settle(mull, github_double)
    assert len(mull_commits(github_double, issue)) == 2  # no endless loop


def test_review_burst_gives_one_revision_with_replies_in_threads(mull, github_double, scripted_model) -> None:
    scripted_model.script("Unresolved review threads", [
        {"tool_calls": [{"name": "write_file", "arguments": {"path": "REVIEWED.md", "content": "done\n"}}]},
        {"tool_calls": [{"name": "finish", "arguments": {"summary": "Addressed review.", "not_done": []}}]}])
    scripted_model.script("CRIT-c3", critique("pass"))
    scripted_model.script("AGENT-c3", agent("CRIT-c3"))
    issue, _ = start(github_double, scripted_model, "c3")
    wait_for(lambda: pr_opened(github_double, issue), what="PR", cluster=mull)
    pr = pull_number(github_double, issue)
    wait_for(lambda: critique_comments(github_double, pr), what="critique", cluster=mull)
    for text in ("Name this constant.", "Add a test.", "And a docstring."):
        github_double.review_comment(REPO, pr, MAINTAINER, "src/widgets.py", 2, text)
    wait_for(lambda: "REVIEWED.md" in github_double.branch_files(REPO, f"mull/issue-{issue}"), timeout=60,
             what="revision", cluster=mull)
    settle(mull, github_double)
    commits = mull_commits(github_double, issue)
    assert len(commits) == 2  # one revision for three comments
    replies = [c for c in github_double.review_comments(REPO, pr) if c.user.login == github_double.bot_login]
    assert len(replies) == 3 and all(commits[0]["sha"] in r.body for r in replies)
    assert len(scripted_model.requests_for("Unresolved review threads")) == 2  # one agent run, two steps


def test_a_review_during_a_revision_gets_its_own_revision_for_the_new_thread_only(
        mull, github_double, scripted_model) -> None:
    scripted_model.script("Unresolved review threads", [
        {"sleep": 2.5, "tool_calls": [{"name": "run_command", "arguments": {"command": "date +%s%N >> reviewed.txt"}}]},
        {"tool_calls": [{"name": "finish", "arguments": {"summary": "Addressed review.", "not_done": []}}]}])
    scripted_model.script("CRIT-c6", critique("pass"))
    scripted_model.script("AGENT-c6", agent("CRIT-c6"))
    issue, _ = start(github_double, scripted_model, "c6")
    wait_for(lambda: pr_opened(github_double, issue), what="PR", cluster=mull)
    pr = pull_number(github_double, issue)
    wait_for(lambda: critique_comments(github_double, pr), what="critique", cluster=mull)
    github_double.review_comment(REPO, pr, MAINTAINER, "src/widgets.py", 2, "FIRST-THREAD name this constant.")
    wait_for(lambda: scripted_model.requests_for("Unresolved review threads"), what="the revision to start",
             cluster=mull)
    github_double.review_comment(REPO, pr, MAINTAINER, "src/widgets.py", 2, "SECOND-THREAD add a docstring.")
    wait_for(lambda: len(mull_commits(github_double, issue)) == 3, timeout=60, what="a second revision",
             cluster=mull)
    second = [r for r in scripted_model.requests_for("Unresolved review threads") if r["turn"] == 0][1]
    prompt = json.dumps(second["body"]["messages"])
    assert "SECOND-THREAD" in prompt and "FIRST-THREAD" not in prompt  # Mull answered the first one already
    settle(mull, github_double)
    assert len(mull_commits(github_double, issue)) == 3  # and nothing more


def test_failing_checks_get_bounded_fix_attempts(mull, github_double, scripted_model) -> None:
    scripted_model.script("failing checks", [
        {"tool_calls": [{"name": "run_command", "arguments": {"command": "date +%s%N >> ci-fix.txt"}}]},
        {"tool_calls": [{"name": "finish", "arguments": {"summary": "Tried.", "not_done": []}}]}])
    scripted_model.script("CRIT-c4", critique("pass"))
    scripted_model.script("AGENT-c4", agent("CRIT-c4"))
    issue, _ = start(github_double, scripted_model, "c4")
    wait_for(lambda: pr_opened(github_double, issue), what="PR", cluster=mull)
    pr = pull_number(github_double, issue)
    branch = f"mull/issue-{issue}"
    for attempt in range(3):
        sha = github_double.branch_sha(REPO, branch)
        github_double.complete_check(REPO, sha, "tests", "failure", title="2 tests failed",
                                     summary="test_answer: expected 42")
        if attempt < 2:
            wait_for(lambda s=sha: github_double.branch_sha(REPO, branch) != s, what=f"fix attempt {attempt + 1}",
                     cluster=mull)
    note = wait_for(lambda: [c for c in github_double.comments(REPO, pr) if "after 2 automatic fix" in c.body],
                    what="gave up", cluster=mull)
    assert note and len(mull_commits(github_double, issue)) == 3
    assert "test_answer: expected 42" in str(scripted_model.requests_for("failing checks")[0]["body"])
    assert github_double.pulls(REPO)[0].draft  # never called ready while checks fail


@pytest.mark.parametrize("turns,reason", [
    ([{"raw_arguments": {"name": "submit_critique", "arguments": "not json{"}}], "critique failed"),
    ([{"status": 500, "body": {"error": {"message": "model crashed"}}}], "critique failed"),
    ([{"sleep": 15, "content": "late"}], "critique failed"),
])
def test_broken_model_output_fails_the_critique_visibly(mull, github_double, scripted_model, turns, reason) -> None:
    scripted_model.script("CRIT-c5", turns)
    scripted_model.script("AGENT-c5", agent("CRIT-c5"))
    issue, _ = start(github_double, scripted_model, "c5")
    wait_for(lambda: pr_opened(github_double, issue), what="PR", cluster=mull)
    pr = pull_number(github_double, issue)
    comment = wait_for(lambda: critique_comments(github_double, pr), timeout=40, what="failed critique",
                       cluster=mull)[0]
    assert reason in comment.body
    assert github_double.pulls(REPO)[0].draft
    assert all(w.alive() for w in mull.workers)
