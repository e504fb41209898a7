"""End to end: the agent's model use, as the scripted model reports it, priced with MULL_MODEL_PRICES in the
pull request body, the status comment and the web process's /metrics."""

from __future__ import annotations

import httpx
import pytest
from doubles.e2e import MAINTAINER, answer_script, cluster_with, pr_opened, wait_for
from doubles.fixtures import INSTALLATION_ID, REPO

pytestmark = pytest.mark.e2e

USAGE = {"prompt_tokens": 100_000, "completion_tokens": 10_000}  # each of the three turns


def test_the_pull_request_shows_what_the_run_cost(tmp_path, redis_url, github_double, scripted_model,
                                                  app_keypair) -> None:
    with cluster_with(tmp_path, redis_url, github_double, scripted_model, app_keypair,
                      MULL_MODEL_PRICES="scripted=2/10, other-model=1/1") as cluster:
        scripted_model.script("SCRIPT-cost", [{**turn, "usage": USAGE} for turn in answer_script("SCRIPT-cost")])
        issue = github_double.create_issue(REPO, "Answer should be 42", "SCRIPT-cost", author=MAINTAINER)
        github_double.label_issue(REPO, issue.number, "mull", MAINTAINER)
        status = wait_for(lambda: pr_opened(github_double, issue.number), what="PR opened", cluster=cluster)
        [pull] = github_double.pulls(REPO)
        body = github_double.issue(REPO, pull.number).body
        # 300,000 tokens in at $2 and 30,000 out at $10 per million: $0.60 + $0.30.
        assert "- This run: 330,000 tokens (300,000 in, 30,000 out), $0.90" in body
        assert "This pull request so far (plan, runs and critiques): 330,000 tokens" in body
        assert "**Model use so far:** 330,000 tokens (300,000 in, 30,000 out), $0.90." in status.body

        def exported() -> str | None:
            text = httpx.get(cluster.url + "/metrics", timeout=5).text
            line = f'mull_installation_tokens_total{{direction="input",installation="{INSTALLATION_ID}"}}'
            return text if line in text else None

        metrics = wait_for(exported, what="installation tokens on /metrics", cluster=cluster)
        values = {line.split(" ")[0]: float(line.split(" ")[1]) for line in metrics.splitlines()
                  if line.startswith("mull_installation_")}
        # The critique of the new head may have added its own tokens by now; the run's are there in any case.
        who = f'installation="{INSTALLATION_ID}"'
        assert values[f'mull_installation_tokens_total{{direction="input",{who}}}'] >= 300_000
        assert values[f"mull_installation_cost_dollars_total{{{who}}}"] >= 0.9


def test_a_run_stops_where_the_months_budget_ends_and_keeps_its_work_and_the_next_run_waits(
        tmp_path, redis_url, github_double, scripted_model, app_keypair) -> None:
    with cluster_with(tmp_path, redis_url, github_double, scripted_model, app_keypair,
                      MULL_INSTALLATION_BUDGET="150000 tokens") as cluster:
        scripted_model.script("SCRIPT-month", [{**turn, "usage": USAGE} for turn in answer_script("SCRIPT-month")])
        first = github_double.create_issue(REPO, "Answer should be 42", "SCRIPT-month", author=MAINTAINER)
        github_double.label_issue(REPO, first.number, "mull", MAINTAINER)
        wait_for(lambda: pr_opened(github_double, first.number), what="PR opened", cluster=cluster)
        [pull] = github_double.pulls(REPO)
        # The second answer (the edit) crossed the month's 150,000 tokens; the third request was refused.
        assert "return 42" in github_double.branch_files(REPO, pull.head_ref)["src/widgets.py"]
        body = github_double.issue(REPO, pull.number).body
        assert "The installation's monthly (150,000 tokens) budget ran out" in body
        assert "220,000 tokens (200,000 in, 20,000 out), unknown price" in body

        second = github_double.create_issue(REPO, "Another", "SCRIPT-month", author=MAINTAINER)
        github_double.label_issue(REPO, second.number, "mull", MAINTAINER)

        def held() -> str | None:
            comments = [c.body for c in github_double.comments(REPO, second.number)
                        if c.user.login == github_double.bot_login]
            waits = any("waiting for the budget" in c and "mull:status" in c for c in comments)
            pings = [c for c in comments if "Mull needs you here" in c]
            return pings[0] if waits and pings else None

        ping = wait_for(held, what="the second run held for the budget", cluster=cluster)
        assert ping.startswith(f"@{MAINTAINER}") and "150,000 tokens" in ping
        assert not [p for p in github_double.pulls(REPO) if p.head_ref == f"mull/issue-{second.number}"]
