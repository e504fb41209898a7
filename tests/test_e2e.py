"""End to end: real `mull web` and `mull worker` processes against the GitHub double, the scripted model,
real Redis and real git. Label → draft PR, idempotent under redelivery, relabel and a killed worker."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from doubles.e2e import (
    MAINTAINER,
    MODEL_KEY,
    READER,
    answer_script,
    cluster_with,
    open_pulls,
    pr_opened,
    secrets_of,
    settle,
    status_comments,
    wait_for,
)
from doubles.fixtures import REPO

pytestmark = pytest.mark.e2e

def test_labeled_issue_becomes_one_draft_pull_request(mull, github_double, scripted_model, app_keypair) -> None:
    scripted_model.script("SCRIPT-answer", answer_script("SCRIPT-answer"))
    issue = github_double.create_issue(REPO, "Answer should be 42", "answer() returns 41. SCRIPT-answer",
                                       author=MAINTAINER)
    assert github_double.label_issue(REPO, issue.number, "mull", MAINTAINER) == 202

    status = wait_for(lambda: pr_opened(github_double, issue.number), what="status: PR opened", cluster=mull)
    pulls = open_pulls(github_double)
    assert len(pulls) == 1
    pull = pulls[0]
    pr_issue = github_double.issue(REPO, pull.number)
    assert pull.head_ref == f"mull/issue-{issue.number}" and pull.draft
    assert pr_issue.title == "Answer should be 42"
    assert f"Fixes #{issue.number}" in pr_issue.body
    assert "Made answer() return 42" in pr_issue.body and "Did not add a test." in pr_issue.body

    files = github_double.branch_files(REPO, pull.head_ref)
    assert "return 42" in files["src/widgets.py"]
    commit = github_double.branch_commits(REPO, pull.head_ref)[0]
    assert commit["author_name"] == github_double.bot_login
    assert "Co-authored-by: maria <" in commit["message"]

    assert len(status_comments(github_double, issue.number)) == 1
    assert len(status.history) >= 2  # queued → working → … edited in place, not reposted
    assert f"#{pull.number}" in status.body
    assert any(r.content == "eyes" for r in github_double.issue(REPO, issue.number).reactions)
    assert set(github_double.issue(REPO, issue.number).labels) == {"mull"}

    # The agent ran `env` and read the git config: no token, key or secret reached the model.
    seen_by_model = json.dumps([r["body"] for r in scripted_model.requests])
    assert "PATH=" in seen_by_model  # the env listing did reach the model…
    assert "not a git repository" in seen_by_model  # …but the tree holds no git metadata of Mull's
    assert github_double.url not in seen_by_model  # not even where GitHub is
    for secret in secrets_of(github_double, app_keypair):
        assert secret not in seen_by_model
    assert "MULL_" not in seen_by_model.split("SCRIPT-answer", 1)[1]
    # …and none reached a log line either.
    for secret in [*secrets_of(github_double, app_keypair), MODEL_KEY]:
        assert secret not in mull.logs()

    # Tokens are minted once per scope and shared through Redis by every job: one scoped to the repository,
    # one installation-wide (it reads the org's .github/mull.yml, which a repo-scoped token cannot).
    assert sorted(t.repos is None for t in github_double.tokens_minted) == [False, True]

    # The bot's own comments, labels and PR came back as webhooks; none started anything.
    github_double.hooks.wait_idle()
    settle(mull, github_double)
    assert len([r for r in scripted_model.requests_for("SCRIPT-answer") if r["turn"] == 0]) == 1
    assert len(open_pulls(github_double)) == 1


def test_redelivery_and_relabel_update_the_same_pull_request(mull, github_double, scripted_model) -> None:
    scripted_model.script("SCRIPT-again", answer_script("SCRIPT-again"))
    issue = github_double.create_issue(REPO, "Answer 42", "SCRIPT-again", author=MAINTAINER)
    delivery = str(uuid.uuid4())
    assert github_double.label_issue(REPO, issue.number, "mull", MAINTAINER, delivery_id=delivery) == 202
    assert github_double.label_issue(REPO, issue.number, "mull", MAINTAINER, delivery_id=delivery) == 200
    wait_for(lambda: pr_opened(github_double, issue.number), what="first PR", cluster=mull)
    first_sha = github_double.branch_sha(REPO, f"mull/issue-{issue.number}")

    # A second revision: the model now also adds a file, so there is something new to push.
    scripted_model.script("SCRIPT-again", [
        {"tool_calls": [{"name": "write_file", "arguments": {"path": "NOTES.md", "content": "revision two\n"}}]},
        {"tool_calls": [{"name": "finish", "arguments": {"summary": "Added notes.", "not_done": []}}]},
    ])
    assert github_double.label_issue(REPO, issue.number, "mull", MAINTAINER) == 202
    wait_for(lambda: "revision 2" in status_comments(github_double, issue.number)[0].body
             and pr_opened(github_double, issue.number), what="revision 2", cluster=mull)

    assert len(open_pulls(github_double)) == 1
    assert len(status_comments(github_double, issue.number)) == 1
    assert github_double.branches(REPO).count(f"mull/issue-{issue.number}") == 1
    commits = github_double.branch_commits(REPO, f"mull/issue-{issue.number}")
    assert commits[1]["sha"] == first_sha  # revision 2 builds on revision 1
    assert "NOTES.md" in github_double.branch_files(REPO, f"mull/issue-{issue.number}")
    assert "Added notes." in github_double.issue(REPO, open_pulls(github_double)[0].number).body


def test_sender_without_write_access_is_refused(mull, github_double, scripted_model) -> None:
    scripted_model.script("SCRIPT-refuse", answer_script("SCRIPT-refuse"))
    issue = github_double.create_issue(REPO, "Please do it", "SCRIPT-refuse", author=READER)
    assert github_double.label_issue(REPO, issue.number, "mull", READER) == 202
    refusal = wait_for(lambda: [c for c in github_double.comments(REPO, issue.number)
                                if c.user.login == github_double.bot_login], what="refusal", cluster=mull)
    assert "@rick" in refusal[0].body and "write or triage access" in refusal[0].body
    settle(mull, github_double)
    assert scripted_model.requests == [] and open_pulls(github_double) == []
    assert not status_comments(github_double, issue.number)


def test_worker_killed_mid_run_resumes_and_still_opens_one_pr(
        tmp_path, redis_url, github_double, scripted_model, app_keypair) -> None:
    """A two-second heartbeat (as a deployment may set) so that the dead worker's job is reclaimed quickly."""
    with cluster_with(tmp_path, redis_url, github_double, scripted_model, app_keypair,
                      MULL_WORKER_HEARTBEAT="2") as mull:
        scripted_model.script("SCRIPT-slow", answer_script("SCRIPT-slow", sleep=4))
        issue = github_double.create_issue(REPO, "Answer 42 slowly", "SCRIPT-slow", author=MAINTAINER)
        assert github_double.label_issue(REPO, issue.number, "mull", MAINTAINER) == 202
        wait_for(lambda: scripted_model.requests_for("SCRIPT-slow"), what="agent started", cluster=mull)
        mull.workers[0].kill()
        restarted_at = time.monotonic()
        mull.start_worker()
        wait_for(lambda: pr_opened(github_double, issue.number), timeout=60, what="resumed run", cluster=mull)
        assert time.monotonic() - restarted_at < 60
        assert len(open_pulls(github_double)) == 1
        assert len(status_comments(github_double, issue.number)) == 1
        assert "revision" not in status_comments(github_double, issue.number)[0].body.split("<!--")[0]


def test_a_worker_killed_between_commit_and_push_resumes_without_running_the_agent_again(
        tmp_path, redis_url, github_double, scripted_model, app_keypair) -> None:
    """The agent's result and commit are kept before the push: the rerun pushes that commit."""
    with cluster_with(tmp_path, redis_url, github_double, scripted_model, app_keypair,
                      MULL_WORKER_HEARTBEAT="2") as cluster:
        scripted_model.script("SCRIPT-kept", answer_script("SCRIPT-kept"))
        github_double.stall_next("POST", r"/git-receive-pack$", 8)  # the push is in flight when the kill lands
        issue = github_double.create_issue(REPO, "Answer 42", "SCRIPT-kept", author=MAINTAINER)
        assert github_double.label_issue(REPO, issue.number, "mull", MAINTAINER) == 202
        wait_for(lambda: "agent result kept" in cluster.workers[0].log(), what="the kept run", cluster=cluster)
        assert f"mull/issue-{issue.number}" not in github_double.branches(REPO)
        cluster.workers[0].kill()
        cluster.start_worker()
        wait_for(lambda: pr_opened(github_double, issue.number), timeout=60, what="the resumed run",
                 cluster=cluster)
    assert len([r for r in scripted_model.requests_for("SCRIPT-kept") if r["turn"] == 0]) == 1
    assert "resuming an earlier try's agent run: pushed its commit" in cluster.workers[1].log()
    assert len(open_pulls(github_double)) == 1
    assert len(status_comments(github_double, issue.number)) == 1
    assert "return 42" in github_double.branch_files(REPO, f"mull/issue-{issue.number}")["src/widgets.py"]


def test_budget_trip_still_pushes_the_work_and_says_which_budget(mull, github_double, scripted_model) -> None:
    scripted_model.script("SCRIPT-endless", [
        {"tool_calls": [{"name": "write_file", "arguments": {"path": "partial.txt", "content": "half done\n"}}]},
        {"tool_calls": [{"name": "read_file", "arguments": {"path": "README.md"}}]},  # repeated forever
    ])
    issue = github_double.create_issue(REPO, "Big job", "SCRIPT-endless", author=MAINTAINER)
    assert github_double.label_issue(REPO, issue.number, "mull", MAINTAINER) == 202
    status = wait_for(lambda: pr_opened(github_double, issue.number), what="WIP PR", cluster=mull)
    assert "steps (6)" in status.body and "budget ran out" in status.body
    assert len(scripted_model.requests_for("SCRIPT-endless")) == 6
    branch = f"mull/issue-{issue.number}"
    assert github_double.branch_files(REPO, branch)["partial.txt"] == "half done\n"
    assert "Work in progress" in github_double.branch_commits(REPO, branch)[0]["message"]
    assert "steps (6) budget ran out" in github_double.issue(REPO, open_pulls(github_double)[0].number).body


def test_run_without_changes_fails_visibly_with_how_to_retry(mull, github_double, scripted_model) -> None:
    scripted_model.script("SCRIPT-idle", [
        {"tool_calls": [{"name": "finish", "arguments": {"summary": "Nothing to do here.", "not_done": []}}]}])
    issue = github_double.create_issue(REPO, "Vague", "SCRIPT-idle", author=MAINTAINER)
    assert github_double.label_issue(REPO, issue.number, "mull", MAINTAINER) == 202
    failed = wait_for(lambda: [c for c in status_comments(github_double, issue.number)
                               if '"phase":"failed"' in c.body], what="failed status", cluster=mull)
    assert "without changing any file" in failed[0].body
    assert "comment `/mull retry`" in failed[0].body
    assert open_pulls(github_double) == [] and f"mull/issue-{issue.number}" not in github_double.branches(REPO)
    # The lifecycle edits the status comment, then the labels: wait for the second view too.
    wait_for(lambda: set(github_double.issue(REPO, issue.number).labels) == {"mull"}, what="the labels",
             cluster=mull)


def test_github_server_errors_and_rate_limits_are_retried(mull, github_double, scripted_model) -> None:
    scripted_model.script("SCRIPT-flaky", answer_script("SCRIPT-flaky"))
    github_double.fail_next("POST", r"/repos/acme/widgets/pulls$", 502, times=2)
    github_double.rate_limit_next("GET", r"/repos/acme/widgets/issues/\d+$", reset_in=1)
    issue = github_double.create_issue(REPO, "Answer 42", "SCRIPT-flaky", author=MAINTAINER)
    assert github_double.label_issue(REPO, issue.number, "mull", MAINTAINER) == 202
    wait_for(lambda: pr_opened(github_double, issue.number), what="PR despite errors", cluster=mull)
    creates = github_double.requests("POST", r"/repos/acme/widgets/pulls$")
    assert [r.status for r in creates] == [502, 502, 201]
    assert len(open_pulls(github_double)) == 1
