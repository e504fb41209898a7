"""End to end on Redis with Sentinel: real `mull web` and two `mull worker` processes on a master and its
replica. The master is SIGKILLed while agent runs are in flight and labels keep coming; Sentinel promotes
the replica and the cluster goes on. Every issue ends with exactly one PR and one status comment, the agent
ran once per issue, and every delivery answered 503 during the failover was redelivered and handled."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from doubles.e2e import MAINTAINER, cluster_env, pr_opened, start_cluster, status_comments, wait_for
from doubles.fixtures import REPO

pytestmark = pytest.mark.e2e

KEY = "FAILOVER"


def agent_turns() -> list[dict]:
    return [
        {"sleep": 1.5, "tool_calls": [{"name": "edit_file", "arguments": {
            "path": "src/widgets.py", "old": "return 41", "new": "return 42"}}]},
        {"tool_calls": [{"name": "finish", "arguments": {"summary": "Done.", "not_done": []}}]},
    ]


def first_turns(scripted_model: Any, marker: str) -> int:
    return sum(1 for r in scripted_model.requests if r["key"] == KEY and r["turn"] == 0
               and marker in json.dumps(r["body"]["messages"][:2]))


def redelivered(deliveries: list[Any]) -> bool:
    """Every delivery refused with 503 has since been accepted on a later attempt."""
    accepted = {d.id for d in deliveries if d.status in (200, 202)}
    return all(d.id in accepted for d in deliveries if d.status == 503)


def test_a_failover_mid_run_loses_no_delivery_and_duplicates_no_run(
        tmp_path, sentinel_pair, github_double, scripted_model, app_keypair) -> None:
    github_double.set_permission(REPO, MAINTAINER, "write")
    env = cluster_env(tmp_path, sentinel_pair.url, github_double, scripted_model, MULL_PRIVATE_KEY=app_keypair[0],
                      MULL_REDELIVER_INTERVAL="10", MULL_INSTALLATION_RUNS="3")
    cluster = start_cluster(tmp_path, github_double, env)
    try:
        cluster.start_worker()
        scripted_model.script(KEY, agent_turns())
        issues = [(github_double.create_issue(REPO, f"Task {n}", f"{KEY}-{n}-END", author=MAINTAINER).number,
                   f"{KEY}-{n}-END") for n in range(6)]
        for number, _ in issues[:3]:
            assert github_double.label_issue(REPO, number, "mull", MAINTAINER) == 202
        wait_for(lambda: any(first_turns(scripted_model, marker) for _, marker in issues[:3]),
                 what="an agent run in flight", cluster=cluster)

        old = sentinel_pair.kill_master()
        # Until a replica confirms a store again, the receiver refuses: first with the master gone, then
        # with a promoted master that has no replica yet (stored there, but unconfirmed).
        for number, _ in issues[3:]:
            assert github_double.label_issue(REPO, number, "mull", MAINTAINER) == 503
        sentinel_pair.wait_promoted(old)
        old.start()  # the dead machine comes back, and Sentinel makes it the new master's replica

        wait_for(lambda: all(pr_opened(github_double, number) for number, _ in issues), timeout=150,
                 what="six pull requests after the failover", cluster=cluster)
        # Mull's own actions (PRs opened, comments) are delivered too, and those refused during the failover
        # come back with Mull's periodic redelivery, which may be after the last PR opened.
        wait_for(lambda: redelivered(github_double.deliveries), timeout=45,
                 what="every refused delivery redelivered", cluster=cluster)
    finally:
        cluster.stop()

    for number, marker in issues:
        pulls = [p for p in github_double.pulls(REPO) if p.head_ref == f"mull/issue-{number}"]
        assert len(pulls) == 1, number
        assert len(status_comments(github_double, number)) == 1, number
        assert first_turns(scripted_model, marker) == 1, number  # the agent ran exactly once
    deliveries = github_double.deliveries
    attempts = Counter(d.id for d in deliveries)
    refused = {d.id for d in deliveries if d.status == 503}
    assert refused and all(attempts[guid] >= 2 for guid in refused)  # each was redelivered
    assert {d.status for d in deliveries} <= {200, 202, 503}  # no 500, and every attempt was answered
    assert sentinel_pair.switches() == 1
