"""Model prices from the operator's setting, refused clearly when wrong; tokens and money added up per issue and
per installation month, and shown in the pull request body, the status comment and ``mull status``."""

from __future__ import annotations

import asyncio
import json

import pytest

from bot import keys
from bot.prices import BadPrices, Price, parse
from bot.settings import ConfigError, load_settings
from worker.agent.base import AgentResult
from worker.github.pull_requests import render_body
from worker.jobs.queue import connect
from worker.ops import spend
from worker.ops.status_report import print_status
from worker.views.status_comment import Phase, RunState, render


def test_prices_read_as_pairs_or_json() -> None:
    assert parse("gpt-4o=2.5/10, openai/o3=2/8 ,") == {"gpt-4o": Price(2.5, 10.0), "openai/o3": Price(2.0, 8.0)}
    assert parse('{"gpt-4o": [2.5, 10], "local": {"input": 0, "output": 0}}') == {
        "gpt-4o": Price(2.5, 10.0), "local": Price(0.0, 0.0)}
    assert parse("  ") == {}


@pytest.mark.parametrize(("text", "named"), [
    ("gpt-4o", "entry 'gpt-4o' is not model=in/out"), ("gpt-4o=2.5", "entry 'gpt-4o=2.5' is not model=in/out"),
    ("=1/2", "entry '=1/2' is not model=in/out"), ("gpt-4o=cheap/10", "entry 'gpt-4o=cheap/10' has 'cheap'"),
    ("a=1/2, b=-1/2", "entry 'b=-1/2' has '-1'"), ("a=nan/2", "entry 'a=nan/2' has 'nan'"),
    ("a=1/inf", "entry 'a=1/inf' has 'inf'"), ('{"a": [1, 2', "is not valid JSON"),
    ('{"a": 3}', "entry 'a' is not [in, out]"), ('{"a": [true, 2]}', "entry 'a' has 'True'"),
    ('{"a": {"input": 1}}', "entry 'a' is not [in, out]")])
def test_a_bad_price_names_its_entry(text: str, named: str) -> None:
    with pytest.raises(BadPrices) as caught:
        parse(text)
    assert named in str(caught.value)


def test_a_bad_price_setting_stops_start_up_with_the_other_problems() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"MULL_MODEL_PRICES": "gpt-4o=2.5/10, claude=3/lots", "MULL_PORT": "x"}, env_file=None)
    problems = caught.value.problems
    assert len(problems) == 2 and any(p.startswith("MULL_PORT") for p in problems)
    [price] = [p for p in problems if p.startswith("MULL_MODEL_PRICES: ")]
    assert "entry 'claude=3/lots' has 'lots'" in price and "gpt-4o=2.5/10" in price  # what to write instead


def test_use_is_described_with_its_price_or_as_unknown() -> None:
    prices = {"m": Price(3, 15)}
    assert spend.priced(prices, "m", 1_000_000, 100_000).describe() == \
        "1,100,000 tokens (1,000,000 in, 100,000 out), $4.50"
    assert spend.priced(prices, "other", 10, 5).describe() == "15 tokens (10 in, 5 out), unknown price"
    mixed = spend.Spend(input=2000, output=100, cost_micro=10_000, unpriced=600, runs=2)
    assert mixed.describe() == "2,100 tokens (2,000 in, 100 out), $0.01 plus 600 tokens at an unknown price"
    assert spend.Spend().describe() == "no model tokens"


def test_use_adds_up_per_issue_and_per_installation_month(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    async def main() -> None:
        redis = await connect(redis_url)
        try:
            await redis.flushdb()
            prices = {"m": Price(2, 10)}
            for model, tokens in (("m", (300_000, 30_000)), ("m", (100_000, 0)), ("unpriced", (5_000, 1_000))):
                await spend.record(redis, prices, installation_id=777, repo_id=5, issue=3, model=model,
                                   input_tokens=tokens[0], output_tokens=tokens[1])
            await spend.record(redis, prices, installation_id=777, repo_id=5, issue=4, model="m",
                               input_tokens=1_000, output_tokens=0)
            issue = await spend.of_issue(redis, 5, 3)
            assert (issue.input, issue.output, issue.runs, issue.unpriced) == (405_000, 31_000, 3, 6_000)
            assert issue.cost_micro == 1_100_000  # 400,000 × $2 + 30,000 × $10 per million
            month = await spend.of_month(redis, 777)
            assert (month.input, month.runs, month.cost_micro) == (406_000, 4, 1_102_000)
            stats = {k.decode(): int(v) for k, v in (await redis.hgetall(keys.STATS)).items()}
            assert stats["spend_tokens|777|input"] == 406_000 and stats["spend_cost_micro|777"] == 1_102_000
            assert stats["spend_unpriced|777"] == 6_000

            await redis.hset(keys.INSTALLATIONS, "777", json.dumps({"account": "acme", "suspended": False}))
            settings = load_settings({"MULL_INSTALLATION_BUDGETS": "acme=$1"}, env_file=None)
            await print_status(redis_url, settings=settings)
            shown = capsys.readouterr().out
            assert f"777 acme: {spend.month_of()} 437,000 tokens (406,000 in, 31,000 out), $1.10 plus 6,000 tokens " \
                   "at an unknown price; budget $1.00, spent: new runs wait" in shown
            await print_status(redis_url, as_json=True, settings=settings)
            report = json.loads(capsys.readouterr().out)
            assert report["installations"]["777"]["month"]["dollars"] == 1.102
        finally:
            await redis.flushdb()
            await redis.aclose()

    asyncio.run(main())


def test_the_pull_request_and_status_comment_show_the_use() -> None:
    result = AgentResult(summary="Done.", not_done=(), budget_tripped=None, error=None, steps=3, tokens=330,
                         spent="330 tokens (300 in, 30 out), $0.01")
    body = render_body(7, result, 1, "maria", so_far="500 tokens (450 in, 50 out), $0.02")
    section = body.split("## Model use", 1)[1]
    assert "- This run: 330 tokens (300 in, 30 out), $0.01" in section
    assert "- This pull request so far (plan, runs and critiques): 500 tokens (450 in, 50 out), $0.02" in section
    assert "## Model use" not in render_body(7, AgentResult("Done.", (), None, None, 0, 0), 1, "maria")
    shown = render(RunState(issue=7, phase=Phase.PR_OPENED, pr=8), "500 tokens (450 in, 50 out), $0.02")
    assert "**Model use so far:** 500 tokens (450 in, 50 out), $0.02." in shown
    assert "Model use" not in render(RunState(issue=7))
