"""The review-queue dashboard's body: its sections and order, stable text, and user text that pings no one."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime

from markdown_it import MarkdownIt

from worker.backlog.state import Item, ItemState
from worker.views.dashboard import (
    BODY_LIMIT,
    MARKER,
    TITLE,
    held_positions,
    inline,
    local_time,
    ordinal_place,
    positions,
    render_dashboard,
    waited,
)

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC).timestamp()  # a Monday
HOUR, DAY = 3600, 86400
BASE = "https://github.com/acme/widgets"
S = ItemState


def render(items: list[Item], **overrides: object) -> str:
    options: dict = {"cap": 3, "in_flight": 1, "now": NOW, "tz": "Europe/Berlin", "next_digest": None,
                     "html_base": BASE}
    options.update(overrides)
    return render_dashboard("acme/widgets", items, **options)


def backlog() -> list[Item]:
    return [
        Item(7, "Parser", S.AWAITING, pr=12, since=NOW - 3 * DAY, effort=2, reviewers=("alice", "bob")),
        Item(8, "Typo", S.AWAITING, pr=13, since=NOW - 5 * HOUR, effort=1),
        Item(6, "Older, same effort", S.AWAITING, pr=14, since=NOW - 4 * DAY, effort=2),
        Item(9, "Held later", S.HELD, pr=15, labeled_at=NOW - 10 * HOUR, effort=1, extra={"held_by": [
            {"login": "rita", "prs": [["acme/gadgets", 4, "https://github.com/acme/gadgets/pull/4"]]}]}),
        Item(10, "Held first", S.HELD, pr=16, labeled_at=NOW - 20 * HOUR, effort=4),
        Item(11, "Critiqued", S.DRAFT, pr=17, since=NOW - 2 * HOUR),
        Item(18, "Busy", S.WORKING, since=NOW - 600),
        Item(19, "Second", S.QUEUED, labeled_at=NOW - 100),
        Item(20, "First", S.QUEUED, labeled_at=NOW - 200),
        Item(21, "Third", S.QUEUED, labeled_at=NOW - 50),
        Item(22, "Which API", S.WAITING, since=NOW - DAY, reason="Keep the old API?"),
        Item(23, "Later", S.SNOOZED, wake_at=NOW + 2 * DAY, snoozes=3),
        Item(24, "Blocked", S.SNOOZED, until_issue=5, snoozes=1),
        Item(25, "Broken", S.FAILED, since=NOW - HOUR, reason="clone failed"),
    ]


def section(body: str, heading: str) -> str:
    """The text under ``### heading`` up to the next heading or the footer."""
    start = body.index(f"### {heading}\n")
    rest = body[start + 4 + len(heading):]
    end = min(i for i in (rest.find("\n### "), rest.find("\n---\n")) if i >= 0)
    return rest[:end]


def rows(text: str) -> list[list[str]]:
    """The body rows of the first table in ``text``, cells stripped."""
    lines = [line for line in text.splitlines() if line.startswith("|")][2:]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]


def test_exports_the_issue_title_and_marker():
    assert (TITLE, MARKER) == ("Mull review queue", "<!-- mull:dashboard -->")
    assert render(backlog()).rstrip().endswith(MARKER)


def test_sections_come_in_order_and_empty_ones_are_left_out():
    body = render(backlog())
    assert re.findall(r"^### (.+)$", body, re.M) == [
        "Awaiting review (3 of 3)", "Held as drafts — waiting for a review slot", "Drafts under critique", "Working",
        "Queued", "Waiting for an answer", "Snoozed", "Failed"]
    only_failed = render([Item(25, "Broken", S.FAILED, since=NOW - HOUR, reason="x")], in_flight=0)
    assert re.findall(r"^### (.+)$", only_failed, re.M) == ["Failed"]
    assert "queue is empty" not in only_failed


def test_awaiting_is_ordered_by_effort_then_age():
    table = rows(section(render(backlog()), "Awaiting review (3 of 3)"))
    assert [row[:5] for row in table] == [["#13", "#8", "Typo", "1/5", "5h"],
                                          ["#14", "#6", "Older, same effort", "2/5", "4d"],
                                          ["#12", "#7", "Parser", "2/5", "3d"]]
    assert table[2][5] == "[@\u200dalice](https://github.com/alice), [@\u200dbob](https://github.com/bob)"
    assert table[0][5] == "—"


def test_held_and_queued_places_are_the_ones_status_comments_use():
    items = backlog()
    assert held_positions(items) == {10: 0, 9: 1}
    assert positions(items) == {20: 0, 19: 1, 21: 2}
    body = render(items)
    held = rows(section(body, "Held as drafts — waiting for a review slot"))
    assert [row[:3] for row in held] == [["next", "#16", "#10"], ["2nd in line", "#15", "#9"]]
    assert [row[5] for row in held] == ["a slot in this repository", "`rita` (1 awaiting their review)"]
    assert [row[:3] for row in rows(section(body, "Queued"))] == [
        ["#20", "First", "next"], ["#19", "Second", "1 ahead"], ["#21", "Third", "2 ahead"]]
    assert [ordinal_place(n) for n in (0, 1, 2, 3, 10, 11, 20, 21, 111)] == [
        "next", "2nd in line", "3rd in line", "4th in line", "11th in line", "12th in line", "21st in line",
        "22nd in line", "112th in line"]


def test_working_waiting_snoozed_and_failed():
    body = render(backlog(), in_flight=2)
    assert "2 agent runs going." in section(body, "Working")
    assert rows(section(body, "Working")) == [["#18", "—", "Busy", "<1h"]]
    assert rows(section(body, "Waiting for an answer")) == [["#22", "—", "Which API", "Keep the old API?", "24h"]]
    assert rows(section(body, "Snoozed")) == [["#23", "—", "Later", "Wed 2 Dec 13:00 CET", "3 times"],
                                              ["#24", "—", "Blocked", "until #5 closes", ""]]
    failed = section(body, "Failed")
    assert rows(failed) == [["#25", "—", "Broken", "clone failed", "1h"]]
    assert "`/mull retry`" in failed
    assert "### Working\n\n1 agent run going." in render([], in_flight=1)


def test_wake_times_follow_the_time_zone_and_daylight_saving():
    summer = datetime(2026, 7, 6, 7, 0, tzinfo=UTC).timestamp()
    assert local_time(summer, "Europe/Berlin", NOW) == "Mon 6 Jul 09:00 CEST"
    assert local_time(NOW, "UTC", NOW) == "Mon 30 Nov 12:00 UTC"
    assert local_time(NOW + 40 * DAY, "America/New_York", NOW) == "Sat 9 Jan 2027 07:00 EST"
    assert local_time(datetime(2026, 12, 1, 8, 0), "Europe/Berlin", NOW) == "Tue 1 Dec 09:00 CET"  # naive is UTC
    both = Item(26, "Both", S.SNOOZED, wake_at=NOW + DAY, until_issue=4, snoozes=2)
    assert rows(section(render([both]), "Snoozed")) == [
        ["#26", "—", "Both", "Tue 1 Dec 13:00 CET, or when #4 closes", "2 times"]]


def test_user_text_pings_no_one_and_keeps_tables_whole():
    evil = "Fix | pipes @alice @org/team\nsecond line <!-- hide --> <b>x</b> back\\slash"
    items = [Item(7, evil, S.AWAITING, pr=12, since=NOW - DAY, effort=2, reviewers=("carol", "copilot[bot]")),
             Item(8, evil, S.FAILED, since=NOW - DAY, reason="boom |\n@dave said <!-- no"),
             Item(9, evil, S.WAITING, since=NOW - DAY, reason="@erin?")]
    body = render(items)
    assert re.search(r"@(?!\u200d)", body) is None  # every @ is followed by a zero-width joiner
    assert body.count("<!--") == 1 and body.count(MARKER) == 1
    assert "<b>" not in body
    assert [len(rows(section(body, name))) for name in ("Awaiting review (1 of 3)", "Failed")] == [1, 1]
    awaiting = rows(section(body, "Awaiting review (1 of 3)"))[0]
    assert len(awaiting) == 6 and awaiting[2].startswith("Fix \\| pipes @\u200dalice")
    assert "\n" not in awaiting[2] and "\\\\slash" in awaiting[2]
    assert awaiting[5] == "[@\u200dcarol](https://github.com/carol), @\u200dcopilot\\[bot\\]"


def test_rendered_tables_have_as_many_cells_as_columns():
    evil = "a | b \\| c `|` d\r\ne"
    items = [Item(n, evil, state, pr=n + 100, since=NOW - DAY, effort=3, reason=evil, wake_at=NOW + DAY)
             for n, state in enumerate(ItemState, start=1)]
    tokens = MarkdownIt("commonmark").enable("table").parse(render(items))
    widths: list[int] = []
    in_row, count = False, 0
    for token in tokens:
        if token.type == "tr_open":
            in_row, count = True, 0
        elif token.type in ("th_open", "td_open") and in_row:
            count += 1
        elif token.type == "tr_close":
            widths.append(count)
    headers = [len(line.split(" | ")) for line in render(items).splitlines() if line.startswith("| ")]
    assert widths == headers and len(widths) == 2 * 8  # eight tables of a header and one row each


def test_same_inputs_give_the_same_bytes_whatever_the_order():
    items = backlog()
    first = render(items, next_digest=datetime(2026, 12, 1, 8, 0, tzinfo=UTC))
    shuffled = items[:]
    random.Random(4).shuffle(shuffled)
    assert render(shuffled, next_digest=datetime(2026, 12, 1, 8, 0, tzinfo=UTC)) == first
    assert "Next digest: Tue 1 Dec 09:00 CET." in first
    assert "Next digest" not in render(items)
    assert render(items, now=NOW + 30) == render(items)  # coarse ages: no edit every few seconds
    assert render(items, now=NOW + 2 * HOUR) != render(items)


def test_an_empty_backlog_says_so():
    body = render([], in_flight=0)
    assert "### " not in body and "The queue is empty" in body
    assert "editing it in place" in body and body.endswith(MARKER + "\n")


def test_sections_stop_at_fifty_rows_and_count_the_rest():
    queued = [Item(n, f"Issue {n}", S.QUEUED, labeled_at=NOW - 1000 + n) for n in range(1, 61)]
    table = section(render(queued), "Queued")
    assert len(rows(table)) == 50 and rows(table)[-1][0] == "#50"
    assert table.rstrip().endswith("… and 10 more")


def test_a_huge_backlog_stays_under_githubs_size_limit():
    long = "x" * 300
    items = [Item(n, long, state, pr=n + 10_000, since=NOW - DAY, effort=3, reason=long, labeled_at=NOW - n)
             for n, state in enumerate(list(ItemState) * 100, start=1)]
    body = render(items)
    assert len(body) <= BODY_LIMIT and body.endswith(MARKER + "\n")
    assert "… and 80 more" in body  # fell back to 20 rows a section


def test_inline_and_waited():
    assert inline("  a\n\tb  ", 10) == "a b"
    assert inline("abcdefghijkl", 5) == "abcd…"
    assert inline("<!-- @x | y", 50) == "&lt;!-- @\u200dx \\| y"
    assert [waited(NOW - s, NOW) for s in (0, 3599, 3600, 47 * HOUR, 2 * DAY, 30 * DAY)] == [
        "<1h", "<1h", "1h", "47h", "2d", "30d"]
    assert waited(0, NOW) == "—" and waited(NOW + 50, NOW) == "<1h"
