"""End to end: `/mull snooze` holds an issue's run; it wakes on `/mull unsnooze`, at its time, when the issue
it waits for closes, or when someone comments."""

from __future__ import annotations

import asyncio

import pytest
from doubles.e2e import MAINTAINER, answer_script, pr_opened, settle, wait_for
from doubles.fixtures import REPO

from bot import keys
from bot.jobs import WAKE_ITEM, WakeRequest

pytestmark = pytest.mark.e2e


def labels_of(double, number: int) -> list[str]:
    return double.issue(REPO, number).labels


def replies(double, number: int) -> list[str]:
    return [c.body for c in double.comments(REPO, number)
            if c.user.login == double.bot_login and "mull:status" not in c.body]


def test_snoozed_issue_waits_and_unsnooze_starts_the_run(mull, github_double, scripted_model) -> None:
    scripted_model.script("SCRIPT-zz1", answer_script("SCRIPT-zz1"))
    issue = github_double.create_issue(REPO, "Later", "SCRIPT-zz1", author=MAINTAINER)
    github_double.comment_as(REPO, issue.number, "/mull snooze 3d", MAINTAINER)
    wait_for(lambda: any("snoozed until" in r for r in replies(github_double, issue.number)), what="snooze reply",
             cluster=mull)
    assert "mull:snoozed" in labels_of(github_double, issue.number)
    github_double.label_issue(REPO, issue.number, "mull", MAINTAINER)
    settle(mull, github_double)
    assert not scripted_model.requests_for("SCRIPT-zz1")  # the run waits for the wake
    github_double.comment_as(REPO, issue.number, "/mull unsnooze", MAINTAINER)
    wait_for(lambda: pr_opened(github_double, issue.number), what="run after unsnooze", cluster=mull)
    assert "mull:snoozed" not in labels_of(github_double, issue.number)


def test_bad_snooze_times_are_refused_with_an_example(mull, github_double) -> None:
    issue = github_double.create_issue(REPO, "Later", "", author=MAINTAINER)
    github_double.comment_as(REPO, issue.number, "/mull snooze whenever", MAINTAINER)
    github_double.comment_as(REPO, issue.number, "/mull snooze 2020-01-01", MAINTAINER)
    texts = wait_for(lambda: len(replies(github_double, issue.number)) >= 2 and replies(github_double, issue.number),
                     what="two refusals", cluster=mull)
    assert any("`3d`" in t for t in texts) and any("past" in t for t in texts)
    assert "mull:snoozed" not in labels_of(github_double, issue.number)


def test_wakes_by_time_by_closing_issue_and_by_activity(mull, github_double, redis_url) -> None:
    timed = github_double.create_issue(REPO, "Timed", "", author=MAINTAINER)
    waiting = github_double.create_issue(REPO, "Waits", "", author=MAINTAINER)
    blocker = github_double.create_issue(REPO, "Blocker", "", author=MAINTAINER)
    chatty = github_double.create_issue(REPO, "Chatty", "", author=MAINTAINER)
    github_double.comment_as(REPO, timed.number, "/mull snooze 2h", MAINTAINER)
    github_double.comment_as(REPO, waiting.number, f"/mull snooze until #{blocker.number}", MAINTAINER)
    github_double.comment_as(REPO, chatty.number, "/mull snooze tomorrow", MAINTAINER)
    for n in (timed.number, waiting.number, chatty.number):
        wait_for(lambda n=n: "mull:snoozed" in labels_of(github_double, n), what=f"#{n} snoozed", cluster=mull)

    github_double.close_issue(REPO, blocker.number, MAINTAINER)
    wait_for(lambda: "mull:snoozed" not in labels_of(github_double, waiting.number), what="until #N", cluster=mull)
    github_double.comment_as(REPO, chatty.number, "Actually, I have news.", "rick")
    wait_for(lambda: "mull:snoozed" not in labels_of(github_double, chatty.number), what="activity", cluster=mull)

    # The timed wake is an arq job deferred to the wake time; run the one for this snooze now, as the clock would.
    import redis as sync_redis

    from worker.jobs.queue import connect

    key = sync_redis.Redis.from_url(redis_url).hget(keys.snooze(github_double.state.repo(REPO).id, timed.number),
                                                    "at_ms")
    assert key, "the snooze is recorded with its wake time"

    async def wake_now() -> None:
        pool = await connect(redis_url)
        await pool.enqueue_job(WAKE_ITEM, WakeRequest(777, github_double.state.repo(REPO).id, REPO, timed.number,
                                                      int(key)), _job_id="wake-now")
        stale = WakeRequest(777, github_double.state.repo(REPO).id, REPO, waiting.number, 1)
        await pool.enqueue_job(WAKE_ITEM, stale, _job_id="wake-stale")
        await pool.aclose()

    asyncio.run(wake_now())
    wait_for(lambda: "mull:snoozed" not in labels_of(github_double, timed.number), what="timed wake", cluster=mull)
