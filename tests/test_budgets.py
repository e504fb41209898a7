"""Installations' monthly budgets: set by the operator only, read with bad input refused at start-up; once a
month's budget is spent new runs wait in line (status comment, one "needs you" ping each) and start when the
budget is raised or the month ends."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest
from arq import Retry
from doubles.e2e import MAINTAINER
from doubles.fixtures import REPO
from doubles.in_process_github import InProcessGitHub
from doubles.services import job_ctx
from test_handlers_in_process import act, mull_pull, queued_jobs, record, replies, run, status

from bot.budgets import BadBudget, Budget, parse_budget, parse_overrides
from bot.jobs import (
    CritiqueRequest,
    RefreshRequest,
    ReviseRequest,
    branch_name,
    critique_job_id,
    revise_job_id,
    solve_job_id,
)
from bot.settings import ConfigError, load_settings
from worker.backlog import budget
from worker.backlog.refresh import refresh_backlog
from worker.backlog.state import ItemState
from worker.backlog.sweep import sweep_backlogs
from worker.jobs.budget_hold import HOLD_RECHECK_S
from worker.jobs.critique import critique_pr
from worker.jobs.queue import ARQ_RETRY
from worker.jobs.revise import revise_pr
from worker.ops import spend
from worker.webhooks import installations


@pytest.mark.parametrize(("text", "expected"), [
    ("5000000 tokens", Budget(tokens=5_000_000)), ("5_000_000", Budget(tokens=5_000_000)), ("1 token", Budget(1)),
    ("$50", Budget(dollars=50.0)), ("$ 12.5", Budget(dollars=12.5)), ("50 USD", Budget(dollars=50.0)),
    ("none", Budget()), ("", Budget())])
def test_budgets_read_tokens_dollars_or_none(text: str, expected: Budget) -> None:
    assert parse_budget(text) == expected


@pytest.mark.parametrize("text", ["lots", "$", "-5 tokens", "5 tokens $5", "€50", "1e9"])
def test_a_bad_budget_is_refused_with_what_to_write(text: str) -> None:
    with pytest.raises(BadBudget, match="tokens .* US dollars"):
        parse_budget(text)


def test_bad_budget_settings_are_reported_with_the_other_settings_problems() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"MULL_INSTALLATION_BUDGET": "plenty", "MULL_INSTALLATION_BUDGETS": "acme=$5, 42",
                       "MULL_AGENT_MAX_STEPS": "many"}, env_file=None)
    problems = caught.value.problems
    assert any(p.startswith("MULL_INSTALLATION_BUDGET: 'plenty' is not a budget") for p in problems)
    assert any(p.startswith("MULL_INSTALLATION_BUDGETS: entry '42' is not installation=budget") for p in problems)
    assert any(p.startswith("MULL_AGENT_MAX_STEPS") for p in problems)
    with pytest.raises(BadBudget, match="entry 'acme=soon'"):
        parse_overrides("acme=soon")


def test_overrides_go_by_installation_id_then_account() -> None:
    settings = load_settings({"MULL_INSTALLATION_BUDGET": "$10",
                              "MULL_INSTALLATION_BUDGETS": "777=2000 tokens, Acme=$50, big-corp=none"}, env_file=None)
    assert settings.budget_for(777, "acme") == Budget(tokens=2000)
    assert settings.budget_for(5, "ACME") == Budget(dollars=50.0)
    assert settings.budget_for(6, "big-corp") == Budget()
    assert settings.budget_for(7, "someone") == Budget(dollars=10.0)


def test_the_sinks_say_a_held_run_waits_for_the_budget_and_a_tripped_one_holds_its_work() -> None:
    from worker.backlog.state import Item
    from worker.views.digest import needs_you

    held, _ = needs_you(REPO, Item(issue=3, title="Go", state=ItemState.QUEUED), "budget", "https://github.com/x")
    assert "waits: the installation's monthly budget is spent" in held and "/mull revise" not in held
    tripped, _ = needs_you(REPO, Item(issue=3, title="Go", state=ItemState.DRAFT, pr=4), "budget",
                           "https://github.com/x")
    assert "The draft holds the work so far" in tripped


def test_a_months_spend_counts_against_that_month_only(redis_url: str) -> None:
    import asyncio

    from worker.jobs.queue import connect

    async def main() -> None:
        redis = await connect(redis_url)
        try:
            await redis.flushdb()
            settings = load_settings({"MULL_INSTALLATION_BUDGET": "$1", "MULL_MODEL_PRICES": "m=10/30"},
                                     env_file=None)
            wednesday = datetime(2026, 12, 9, 15, tzinfo=UTC).timestamp()
            used = await spend.record(redis, settings.prices, installation_id=9, repo_id=1, issue=3, model="m",
                                      input_tokens=70_000, output_tokens=10_000, now=wednesday)
            assert used.cost_micro == 1_000_000 and used.describe() == "80,000 tokens (70,000 in, 10,000 out), $1.00"
            assert (await budget.state(redis, settings, 9, now=wednesday + 3600)).exhausted
            next_month = datetime(2027, 1, 1, 0, 0, 1, tzinfo=UTC).timestamp()
            assert not (await budget.state(redis, settings, 9, now=next_month)).exhausted
            # Tokens of a model without a price count as tokens, never against a money budget.
            await spend.record(redis, settings.prices, installation_id=10, repo_id=1, issue=4, model="other",
                               input_tokens=10**9, output_tokens=0, now=wednesday)
            assert not (await budget.state(redis, settings, 10, now=wednesday)).exhausted
            assert (await spend.of_month(redis, 10, "2026-12")).describe().endswith("unknown price")
        finally:
            await redis.flushdb()
            await redis.aclose()

    asyncio.run(main())


def test_a_budget_spent_mid_week_holds_new_runs_and_raising_it_releases_them(
        tmp_path: Path, redis_url: str, app_keypair: tuple[str, str]) -> None:
    async def scenario(world: InProcessGitHub) -> None:
        installation = world.ref.installation_id
        await installations.record(world.svc.redis, {"id": installation, "account": {"login": "acme"}})
        world.svc = dataclasses.replace(world.svc, settings=load_settings(
            {"MULL_INSTALLATION_BUDGET": "100000 tokens", "MULL_INSTALLATION_BUDGETS": "acme=50000 tokens"},
            env_file=None))
        # Runs earlier this week used the month's budget up.
        await spend.record(world.svc.redis, {}, installation_id=installation, repo_id=world.ref.repo_id, issue=None,
                           model="scripted", input_tokens=45_000, output_tokens=6_000)
        issues = [world.double.create_issue(REPO, f"Issue {n}", "", author=MAINTAINER).number for n in (1, 2)]
        for number in issues:
            assert await act(world, lambda n=number: world.double.label_issue(REPO, n, "mull", MAINTAINER)) == [
                "queued"]
        assert not {solve_job_id(world.ref.repo_id, n) for n in issues} & await queued_jobs(world)
        request = RefreshRequest(installation, world.ref.repo_id, REPO)
        await refresh_backlog(job_ctx(world.svc), request)
        for number in issues:
            assert (await record(world, number)).state is ItemState.QUEUED
            assert "waiting for the budget" in status(world, number) and "50,000 tokens" in status(world, number)
            [ping] = [r for r in replies(world, number) if "Mull needs you here" in r]
            assert ping.startswith(f"@{MAINTAINER}") and "budget" in ping and "MULL_INSTALLATION_BUDGET" in ping
        # The sweep goes round while the budget stays spent: nothing starts, nobody is pinged again.
        assert await sweep_backlogs(job_ctx(world.svc)) == 0
        assert all(len([r for r in replies(world, n) if "Mull needs you here" in r]) == 1 for n in issues)

        # The operator raises the budget (read at start-up): the next sweep starts both runs.
        world.svc = dataclasses.replace(world.svc, settings=load_settings(
            {"MULL_INSTALLATION_BUDGETS": "acme=200000 tokens"}, env_file=None))
        assert await sweep_backlogs(job_ctx(world.svc)) == 2
        assert {solve_job_id(world.ref.repo_id, n) for n in issues} <= await queued_jobs(world)
        await refresh_backlog(job_ctx(world.svc), request)
        assert all("waiting for the budget" not in status(world, n) for n in issues)

    run(tmp_path, redis_url, app_keypair, scenario)


def test_a_spent_budget_holds_critiques_and_revisions_once_told_and_with_their_tries_handed_back(
        tmp_path: Path, redis_url: str, app_keypair: tuple[str, str]) -> None:
    """A critique or a revision is its own job, started by a new head or a review: with the month's budget spent
    it does not reach the model. It says so once, pings once, keeps arq's try and looks again later."""
    async def scenario(world: InProcessGitHub) -> None:
        installation = world.ref.installation_id
        number = world.double.create_issue(REPO, "Answer 42", "", author=MAINTAINER).number
        pr = await mull_pull(world, number)
        world.svc = dataclasses.replace(world.svc, settings=load_settings(
            {"MULL_INSTALLATION_BUDGET": "10000 tokens"}, env_file=None))
        await spend.record(world.svc.redis, {}, installation_id=installation, repo_id=world.ref.repo_id,
                           issue=number, model="scripted", input_tokens=9_000, output_tokens=2_000)
        head = world.double.branch_sha(REPO, branch_name(number))
        jobs = [(critique_pr, critique_job_id(world.ref.repo_id, pr, head), CritiqueRequest(
                    installation, world.ref.repo_id, REPO, pr, head), f"The critique of #{pr} waits for the budget"),
                (revise_pr, revise_job_id(world.ref.repo_id, pr, "command"), ReviseRequest(
                    installation, world.ref.repo_id, REPO, pr, "command", "Use 43.", MAINTAINER),
                 f"The revision for `/mull revise` on #{pr} waits for the budget")]
        seen = len(world.double.requests())
        for job, job_id, request, news in jobs:
            for _ in range(2):  # it comes back while the budget stays spent: told once
                await world.svc.redis.set(ARQ_RETRY + job_id, 1)  # arq counted this try
                with pytest.raises(Retry) as held:
                    await job(job_ctx(world.svc, job_id), request)
                assert held.value.defer_score == HOLD_RECHECK_S * 1000
                assert int(await world.svc.redis.get(ARQ_RETRY + job_id)) == 0  # waiting is not a failed try
            assert news in status(world, number) and "10,000 tokens" in status(world, number)
        pings = [r for r in replies(world, number) if "Mull needs you here" in r]
        assert len(pings) == 1 and "budget" in pings[0]  # one ping for the issue in this month
        assert not [c for c in world.double.comments(REPO, pr) if "mull:critique" in c.body]
        assert world.double.branch_sha(REPO, branch_name(number)) == head  # no revision pushed
        assert not [r for r in world.double.requests()[seen:] if "/pulls" in r.path and r.method != "GET"]

    run(tmp_path, redis_url, app_keypair, scenario)
