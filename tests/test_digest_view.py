"""A reviewer's digest in Markdown, Slack and JSON, and the "needs you" events: content, order, and no stray pings."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from worker.backlog.state import Item, ItemState
from worker.views.digest import ASK_AFTER, asks_to_split, digest_data, digest_markdown, digest_slack, needs_you

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC).timestamp()  # a Monday
HOUR, DAY = 3600, 86400
BASE = "https://github.com/acme/widgets"
DASHBOARD = f"{BASE}/issues/1"
S = ItemState


def lists() -> tuple[list[Item], list[Item], list[Item]]:
    awaiting = [Item(7, "Parser", S.AWAITING, pr=12, since=NOW - 3 * DAY, effort=2),
                Item(8, "Typo", S.AWAITING, pr=13, since=NOW - 5 * HOUR, effort=1),
                Item(6, "Older", S.AWAITING, pr=14, since=NOW - 4 * DAY, effort=2),
                Item(5, "Unrated", S.AWAITING, pr=15, since=NOW - 9 * DAY)]
    asks = [Item(9, "Everything at once", S.SNOOZED, snoozes=3)]
    waiting = [Item(11, "Which API", S.WAITING, since=NOW - DAY, reason="Keep the old API?")]
    return awaiting, asks, waiting


def markdown(awaiting: list[Item], asks: list[Item], waiting: list[Item], **kw: object) -> str:
    options: dict = {"now": NOW, "tz": "Europe/Berlin", "dashboard_url": DASHBOARD}
    options.update(kw)
    return digest_markdown("acme/widgets", "alice", awaiting, asks, waiting, **options)


def slack(awaiting: list[Item], asks: list[Item], waiting: list[Item]) -> str:
    return digest_slack("acme/widgets", "alice", awaiting, asks, waiting, now=NOW, tz="Europe/Berlin",
                        dashboard_url=DASHBOARD, html_base=BASE + "/")


def test_nothing_to_say_is_no_digest():
    assert markdown([], [], []) == ""
    assert slack([], [], []) == ""
    data = digest_data("acme/widgets", "alice", [], [], [], now=NOW, tz="UTC", dashboard_url=None, html_base=BASE,
                       window_start=None)
    assert (data["items"], data["asks"], data["waiting"]) == ([], [], [])


def test_markdown_mentions_the_reviewer_and_orders_like_the_dashboard():
    text = markdown(*lists())
    assert text.startswith("@alice, your Mull review digest for acme/widgets (Mon 30 Nov 13:00 CET).\n\n")
    assert "**4 pull requests wait for your review**" in text
    bullets = [line for line in text.splitlines() if line.startswith("- ")]
    assert bullets == [
        "- #13 (issue #8): Typo — effort 1/5, waiting 5h",
        "- #14 (issue #6): Older — effort 2/5, waiting 4d",
        "- #12 (issue #7): Parser — effort 2/5, waiting 3d",
        "- #15 (issue #5): Unrated — waiting 9d",
        "- #9 (Everything at once) has been snoozed 3 times. Split it into smaller issues, or close it?",
        "- #11: Which API — Keep the old API? (for 24h)",
    ]
    assert text.rstrip().endswith(f"[The whole review queue]({DASHBOARD})")
    assert "review queue]" not in markdown(*lists(), dashboard_url=None)
    one = markdown([lists()[0][1]], [], [])
    assert "**1 pull request waits for your review**" in one and "Snoozed" not in one and "Waiting" not in one


def test_only_the_reviewer_is_mentioned():
    awaiting = [Item(7, "Ask @bob | <!-- x", S.AWAITING, pr=12, since=NOW - DAY, effort=2)]
    waiting = [Item(11, "@carol", S.WAITING, since=NOW - DAY, reason="@dave, yes?")]
    text = markdown(awaiting, [Item(9, "@erin", S.SNOOZED, snoozes=4)], waiting)
    assert re.findall(r"@(?!\u200d)[\w/-]+", text) == ["@alice"]
    assert "<!--" not in text and "Ask @\u200dbob \\| &lt;!-- x" in text
    assert digest_markdown("acme/widgets", "@acme/reviewers", awaiting, [], [], now=NOW, tz="UTC",
                           dashboard_url=None).startswith("@acme/reviewers, ")


def test_slack_links_each_reference_and_escapes_user_text():
    awaiting, asks, waiting = lists()
    awaiting.append(Item(4, "<!here> & <https://evil|click> @bob", S.AWAITING, pr=16, since=NOW - DAY, effort=5))
    text = slack(awaiting, asks, waiting)
    assert text.startswith(f"@alice, your Mull review digest for <{BASE}|acme/widgets> (Mon 30 Nov 13:00 CET).")
    assert "*5 pull requests wait for your review*" in text
    assert f"• <{BASE}/pull/13|#13> (issue <{BASE}/issues/8|#8>): Typo — effort 1/5, waiting 5h" in text
    assert f"• <{BASE}/issues/9|#9> (Everything at once) has been snoozed 3 times." in text
    assert f"• <{BASE}/issues/11|#11>: Which API — Keep the old API? (for 24h)" in text
    assert "&lt;!here&gt; &amp; &lt;https://evil|click&gt; @\u200dbob" in text
    assert "<!here>" not in text and text.rstrip().endswith(f"<{DASHBOARD}|The whole review queue>")
    assert re.findall(r"<(https?://[^|>]+)\|", text)[1:5] == [f"{BASE}/pull/13", f"{BASE}/issues/8",
                                                              f"{BASE}/pull/14", f"{BASE}/issues/6"]


def test_data_is_json_with_the_window_and_raw_text():
    awaiting, asks, waiting = lists()
    data = digest_data("acme/widgets", "@alice", awaiting, asks, waiting, now=NOW, tz="Europe/Berlin",
                       dashboard_url=DASHBOARD, html_base=BASE, window_start=NOW - DAY)
    assert json.loads(json.dumps(data)) == data
    assert (data["kind"], data["repo"], data["reviewer"], data["timezone"]) == (
        "digest", "acme/widgets", "alice", "Europe/Berlin")
    assert data["window"] == {"start": "2026-11-29T12:00:00Z", "end": "2026-11-30T12:00:00Z"}
    assert [(i["number"], i["pr"], i["effort"], i["age_seconds"]) for i in data["items"]] == [
        (8, 13, 1, 5 * HOUR), (6, 14, 2, 4 * DAY), (7, 12, 2, 3 * DAY), (5, 15, None, 9 * DAY)]
    assert data["items"][0] == {"number": 8, "pr": 13, "title": "Typo", "effort": 1, "age_seconds": 5 * HOUR,
                                "url": f"{BASE}/pull/13"}
    assert data["asks"] == [{"number": 9, "pr": None, "title": "Everything at once", "snoozes": 3,
                             "url": f"{BASE}/issues/9"}]
    assert data["waiting"][0]["reason"] == "Keep the old API?" and data["waiting"][0]["age_seconds"] == DAY
    first = digest_data("acme/widgets", "alice", [Item(3, "x", S.AWAITING)], [], [], now=NOW, tz="UTC",
                        dashboard_url=None, html_base=BASE, window_start=None)
    assert first["window"]["start"] is None and first["items"][0]["age_seconds"] is None


def test_asks_start_at_the_third_snooze():
    assert ASK_AFTER == 3
    assert [asks_to_split(Item(1, snoozes=n)) for n in (0, 2, 3, 7)] == [False, False, True, True]
    text = markdown([], [Item(9, "Nine", S.SNOOZED, snoozes=3), Item(3, "Three", S.SNOOZED, snoozes=5)], [])
    assert [line[:4] for line in text.splitlines() if line.startswith("- ")] == ["- #3", "- #9"]
    assert "#3 (Three) has been snoozed 5 times." in text and "wait for your review" not in text


@pytest.mark.parametrize("kind, head, hint", [
    ("question", "❓ Mull has a question about", "Answer it in a comment on the issue"),
    ("budget", "⏳ Mull ran out of budget on", "`/mull revise …`"),
    ("failed", "❌ Mull could not finish", "Comment `/mull retry` on the issue"),
])
def test_needs_you_events(kind, head, hint):
    item = Item(7, "Parser <b>", S.FAILED, pr=12, reason="tests failed\n@bob broke it", labeled_by="alice")
    text, data = needs_you("acme/widgets", item, kind, BASE)
    lines = text.splitlines()
    assert lines[0] == f"{head} <{BASE}/issues/7|#7> (<{BASE}/pull/12|#12>): Parser &lt;b&gt; in <{BASE}|acme/widgets>."
    assert lines[1] == "> tests failed @\u200dbob broke it"
    assert hint in lines[2] and lines[2].endswith("(labeled by alice)")
    assert json.loads(json.dumps(data)) == data
    assert data == {"kind": "needs_you", "event": kind, "repo": "acme/widgets", "number": 7, "pr": 12,
                    "title": "Parser <b>", "reason": "tests failed\n@bob broke it", "state": "failed",
                    "labeled_by": "alice", "url": f"{BASE}/pull/12"}


def test_needs_you_without_a_pull_request_or_reason():
    text, data = needs_you("acme/widgets", Item(7, "", S.WAITING), "question", BASE)
    assert text.splitlines()[0] == f"❓ Mull has a question about <{BASE}/issues/7|#7> in <{BASE}|acme/widgets>."
    assert len(text.splitlines()) == 2 and data["url"] == f"{BASE}/issues/7"
    with pytest.raises(ValueError, match="kind"):
        needs_you("acme/widgets", Item(7), "nudge", BASE)
