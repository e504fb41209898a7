"""End to end with a real third-party CLI agent: mini-swe-agent from PyPI, run through its preset, offline.

It runs in Mull's sandbox with no network; its only way to a model is Mull's gateway, which forwards to the
scripted model double. The label becomes a pull request holding the agent's edit, and the double saw only
the gateway's requests, with Mull's key. ``.ci/run`` installs the agent in a virtualenv of its own and
names it in MULL_TEST_AGENT_VENV; a machine without it skips this test, CI never does.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from doubles.e2e import MAINTAINER, MODEL_KEY, cluster_env, open_pulls, pr_opened, wait_for
from doubles.fixtures import REPO
from doubles.mull_process import MullCluster

pytestmark = pytest.mark.e2e

VENV = Path(os.environ.get("MULL_TEST_AGENT_VENV", "/opt/mull-ci/mini-swe-agent"))


def _agent_venv() -> Path:
    if (VENV / "bin" / "mini").exists():
        return VENV
    if os.environ.get("CI"):
        pytest.fail(f"mini-swe-agent is not installed in {VENV}: .ci/run installs it (MULL_TEST_AGENT_VENV)")
    pytest.skip(f"mini-swe-agent is not installed in {VENV}; `bash .ci/run` installs it")


def _base_prefix(venv: Path) -> str:
    return subprocess.run([str(venv / "bin" / "python"), "-c", "import sys; print(sys.base_prefix)"],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_mini_swe_agent_edits_through_the_gateway_and_its_change_reaches_the_pr(
        tmp_path, redis_url, github_double, scripted_model, app_keypair) -> None:
    venv = _agent_venv()
    github_double.set_permission(REPO, MAINTAINER, "write")
    env = cluster_env(tmp_path, redis_url, github_double, scripted_model, MULL_PRIVATE_KEY=app_keypair[0],
                      PATH=f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin", MULL_AGENT_COMMAND="mini-swe-agent",
                      MULL_AGENT_TIMEOUT="240", MULL_SANDBOX_RO_PATHS=f"{venv}:{_base_prefix(venv)}")
    cluster = MullCluster(tmp_path, env)
    # mini-swe-agent speaks tool calls: one `bash` call edits, the next submits.
    scripted_model.script("SCRIPT-mini", [
        {"content": "I will make answer() return 42.", "tool_calls": [{"name": "bash", "arguments": {
            "command": "sed -i 's/return 41/return 42/' src/widgets.py && cat src/widgets.py"}}]},
        {"content": "Done.", "tool_calls": [{"name": "bash", "arguments": {
            "command": "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"}}]},
    ])
    try:
        cluster.start_web()
        github_double.set_webhook(cluster.webhook_url)
        cluster.start_worker()
        issue = github_double.create_issue(REPO, "Answer should be 42", "answer() returns 41. SCRIPT-mini",
                                           author=MAINTAINER)
        assert github_double.label_issue(REPO, issue.number, "mull", MAINTAINER) == 202
        wait_for(lambda: pr_opened(github_double, issue.number), timeout=240, what="the pull request",
                 cluster=cluster)
        pull = open_pulls(github_double)[0]
        files = github_double.branch_files(REPO, pull.head_ref)
        assert "return 42" in files["src/widgets.py"]
        assert set(files) == {"README.md", "src/widgets.py"}  # nothing the agent left in its HOME or tree
        agent_requests = [r for r in scripted_model.requests if r["key"] == "SCRIPT-mini"]
        assert len(agent_requests) >= 2
        assert all(r["authorization"] == f"Bearer {MODEL_KEY}" for r in agent_requests)  # added by the gateway
        assert all(r["body"]["model"] == "scripted" for r in agent_requests)
        transcripts = list((tmp_path / "data" / "transcripts").glob("*.jsonl"))
        assert transcripts and MODEL_KEY not in "".join(t.read_text() for t in transcripts)
    finally:
        cluster.stop()
