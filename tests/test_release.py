"""Who is asked to review and how the status line reads: reviewer candidates (config, CODEOWNERS, labeler) over
respx, the per-reviewer cap on a real Redis, refused review requests, and the queue lines status comments show."""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest
import redis.asyncio as aioredis
import respx
from doubles.recording_log import RecordingLog
from githubkit import GitHub, TokenAuthStrategy
from githubkit.exception import RequestFailed

from bot import keys
from bot.jobs import RepoRef
from worker.backlog.refresh import queue_line
from worker.backlog.release import choose_reviewer, request_review, reviewer_candidates
from worker.backlog.state import Item, ItemState
from worker.backlog.store import Limits

API = "https://api.github.test"
PULL = f"{API}/repos/acme/widgets/pulls/7"


def github() -> GitHub:
    return GitHub(TokenAuthStrategy("ghs_" + "t" * 36), base_url=API + "/", http_cache=False, auto_retry=False)


def content(text: str) -> httpx.Response:
    return httpx.Response(200, json={"type": "file", "encoding": "base64", "path": "x", "name": "x", "sha": "s",
                                     "content": base64.b64encode(text.encode()).decode()})


def files(*names: str) -> httpx.Response:
    return httpx.Response(200, json=[{"filename": n, "status": "modified", "additions": 1, "deletions": 0,
                                      "changes": 1, "sha": "s", "blob_url": "", "raw_url": "", "contents_url": ""}
                                     for n in names])


def candidates(mock: respx.MockRouter, configured: tuple[str, ...] = (), labeled_by: str = "maria") -> tuple:
    async def main() -> tuple:
        async with github() as gh:
            return await reviewer_candidates(gh, RepoRef(1, 2, "acme", "widgets"), 7, configured, labeled_by, "main")
    return asyncio.run(main())


def test_configured_reviewers_win_without_asking_github() -> None:
    with respx.mock(assert_all_called=False) as mock:
        assert candidates(mock, ("rita", "@acme/core")) == ("rita", "@acme/core")
        assert not mock.calls


def test_codeowners_of_the_changed_files_come_next() -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.get(f"{API}/repos/acme/widgets/contents/.github/CODEOWNERS").mock(
            return_value=httpx.Response(404, json={"message": "Not Found"}))
        mock.get(f"{API}/repos/acme/widgets/contents/CODEOWNERS").mock(return_value=content(
            "*       @octo\n/src/ @sam @acme/core\ndocs/* @dora\n"))
        mock.get(f"{PULL}/files").mock(return_value=files("src/a.py", "README.md"))
        assert candidates(mock) == ("sam", "acme/core", "octo")


def test_without_codeowners_the_labeler_is_asked_but_never_a_bot() -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.get(url__regex=rf"{API}/repos/acme/widgets/contents/.*").mock(
            return_value=httpx.Response(404, json={"message": "Not Found"}))
        assert candidates(mock) == ("maria",)
        assert candidates(mock, labeled_by="renovate[bot]") == ()


def test_a_refused_review_request_is_logged_and_the_release_goes_on() -> None:
    log = RecordingLog()

    async def main() -> bool:
        async with github() as gh:
            return await request_review(gh, RepoRef(1, 2, "acme", "widgets"), 7, ("stranger", "@acme/core"), log)

    with respx.mock(assert_all_called=False) as mock:
        route = mock.post(f"{PULL}/requested_reviewers").mock(return_value=httpx.Response(
            422, json={"message": "Reviews may only be requested from collaborators."}))
        assert asyncio.run(main()) is False
        assert route.calls[0].request.content == b'{"reviewers":["stranger"],"team_reviewers":["core"]}'
        assert log.warnings() and log.warnings()[0][0] == "review request refused"
        route.mock(return_value=httpx.Response(500, json={"message": "boom"}))
        with pytest.raises(RequestFailed):
            asyncio.run(main())
        route.mock(return_value=httpx.Response(201, json={}))
        assert asyncio.run(main()) is True


def test_the_least_busy_reviewer_under_the_cap_is_chosen(redis_url: str) -> None:
    async def main() -> list:
        redis = aioredis.Redis.from_url(redis_url)
        try:
            await redis.delete(keys.reviewer_load(1, "ann"), keys.reviewer_load(1, "bob"))
            await redis.sadd(keys.reviewer_load(1, "ann"), "9:1", "9:2")
            await redis.sadd(keys.reviewer_load(1, "bob"), "9:3")
            return [await choose_reviewer(redis, 1, ("ann", "bob"), 3),
                    await choose_reviewer(redis, 1, ("ann", "bob", "acme/core"), 2),
                    await choose_reviewer(redis, 1, ("ann",), 2),
                    await choose_reviewer(redis, 1, ("acme/core",), 2),
                    await choose_reviewer(redis, 1, (), 2)]
        finally:
            await redis.aclose()

    assert asyncio.run(main()) == [("bob",), ("bob", "acme/core"), None, ("acme/core",), ()]


LIMITS = Limits(max_in_flight=2, max_awaiting_review=3)


@pytest.mark.parametrize(("item", "ahead", "held", "line"), [
    (Item(1, state=ItemState.QUEUED), {1: 0}, {}, "**Queue:** next in line."),
    (Item(1, state=ItemState.QUEUED), {1: 2}, {},
     "**Queue:** 2 ahead of it (up to 2 agent runs at a time in this repository)."),
    (Item(1, state=ItemState.QUEUED), {1: 40}, {},
     "**Queue:** more than 10 ahead of it (up to 2 agent runs at a time in this repository)."),
    (Item(1, state=ItemState.HELD, pr=9), {}, {1: 1},
     "**Review queue:** finished, but 3 Mull pull requests already await review in this repository, so #9 stays a "
     "draft: 1 ahead of it."),
    (Item(1, state=ItemState.HELD, pr=9, extra={"held_by": [
        {"login": "rita", "prs": [["acme/gadgets", 4, "https://github.com/acme/gadgets/pull/4"]]}]}), {}, {1: 0},
     "**Review queue:** finished, but its reviewer `rita` already has 1 Mull pull request awaiting their review "
     "([acme/gadgets#4](https://github.com/acme/gadgets/pull/4)), the most one person is given at a time; so #9 "
     "stays a draft until one of those is reviewed: next in line."),
    (Item(1, state=ItemState.HELD, pr=9, extra={"held_by": [
        {"login": "rita", "prs": [["acme/a", 4, "u4"], ["acme/b", 5, "u5"], ["acme/c", 6, "u6"]]},
        {"login": "sam", "prs": [["acme/a", 7, "u7"], ["acme/a", 8, "u8"], ["acme/a", 9, "u9"]]}]}), {}, {1: 2},
     "**Review queue:** finished, but each of its possible reviewers already has 3 Mull pull requests awaiting their "
     "review, the most one person is given at a time (`rita`: [acme/a#4](u4), [acme/b#5](u5), [acme/c#6](u6); "
     "`sam`: [acme/a#7](u7), [acme/a#8](u8), [acme/a#9](u9)); so #9 stays a draft until one of those is reviewed: "
     "2 ahead of it."),
    (Item(1, state=ItemState.AWAITING, pr=9, reviewers=("rita",)), {}, {},
     "**Review queue:** #9 is ready for review; review requested from `rita`."),
    (Item(1, state=ItemState.SNOOZED, until_issue=4), {}, {}, "**Snoozed** until #4 is closed."),
    (Item(1, state=ItemState.SNOOZED, wake_at=1_796_112_000.0), {}, {}, "**Snoozed** until Tue 1 Dec 08:00 UTC."),
    (Item(1, state=ItemState.WORKING), {}, {}, ""),
])
def test_status_lines(item: Item, ahead: dict, held: dict, line: str) -> None:
    assert queue_line(item, ahead, held, LIMITS, "UTC", 1_796_000_000.0) == line
