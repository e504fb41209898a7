"""Snooze times: a small exact grammar, resolved in the repository's timezone with DST-correct wall clocks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.snooze_time import SnoozeError, Wake, parse_snooze

# Saturday 2026-03-28 19:00 UTC: 20:00 in Berlin, the evening before its clocks spring forward.
NOW = datetime(2026, 3, 28, 19, 0, tzinfo=UTC)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(("text", "at"), [
    pytest.param("", utc(2026, 3, 29, 19, 0), id="default-one-day"),
    pytest.param(None, utc(2026, 3, 29, 19, 0), id="none-is-default"),
    pytest.param("30m", utc(2026, 3, 28, 19, 30), id="30m"),
    pytest.param("4h", utc(2026, 3, 28, 23, 0), id="4h"),
    pytest.param("3d", utc(2026, 3, 31, 19, 0), id="3d"),
    pytest.param("2w", utc(2026, 4, 11, 19, 0), id="2w"),
    pytest.param("90 minutes", utc(2026, 3, 28, 20, 30), id="90-minutes"),
    pytest.param("5 mins", utc(2026, 3, 28, 19, 5), id="5-mins"),
    pytest.param("1 hour", utc(2026, 3, 28, 20, 0), id="1-hour"),
    pytest.param("2 hrs", utc(2026, 3, 28, 21, 0), id="2-hrs"),
    pytest.param("1 day", utc(2026, 3, 29, 19, 0), id="1-day"),
    pytest.param("2 weeks", utc(2026, 4, 11, 19, 0), id="2-weeks"),
    pytest.param("3 D", utc(2026, 3, 31, 19, 0), id="upper-case-unit"),
    pytest.param("for 3 days", utc(2026, 3, 31, 19, 0), id="for-prefix"),
    pytest.param("90d", utc(2026, 6, 26, 19, 0), id="exactly-90-days-is-not-capped"),
    pytest.param("tomorrow", utc(2026, 3, 29, 9, 0), id="tomorrow"),
    pytest.param("Tomorrow", utc(2026, 3, 29, 9, 0), id="tomorrow-capitalised"),
    pytest.param("until tomorrow", utc(2026, 3, 29, 9, 0), id="until-tomorrow"),
    pytest.param("monday", utc(2026, 3, 30, 9, 0), id="monday"),
    pytest.param("Mon", utc(2026, 3, 30, 9, 0), id="mon"),
    pytest.param("next monday", utc(2026, 3, 30, 9, 0), id="next-monday"),
    pytest.param("until monday", utc(2026, 3, 30, 9, 0), id="until-monday"),
    pytest.param("sunday", utc(2026, 3, 29, 9, 0), id="sunday-is-tomorrow"),
    pytest.param("saturday", utc(2026, 4, 4, 9, 0), id="today-s-weekday-is-a-week-away"),
    pytest.param("thurs", utc(2026, 4, 2, 9, 0), id="thurs"),
    pytest.param("friday", utc(2026, 4, 3, 9, 0), id="friday"),
    pytest.param("next week", utc(2026, 3, 30, 9, 0), id="next-week"),
    pytest.param("  next   WEEK ", utc(2026, 3, 30, 9, 0), id="next-week-spacing"),
    pytest.param("2026-04-15", utc(2026, 4, 15, 9, 0), id="iso-date"),
    pytest.param("until 2026-04-15", utc(2026, 4, 15, 9, 0), id="until-iso-date"),
    pytest.param("2026-03-29", utc(2026, 3, 29, 9, 0), id="iso-date-tomorrow"),
    pytest.param("2026-04-15T15:00", utc(2026, 4, 15, 15, 0), id="iso-date-time"),
    pytest.param("2026-04-15t15:00", utc(2026, 4, 15, 15, 0), id="iso-lower-t"),
    pytest.param("2026-04-15 15:00", utc(2026, 4, 15, 15, 0), id="iso-space"),
    pytest.param("2026-04-15T15:00:30", utc(2026, 4, 15, 15, 0, 30), id="iso-seconds"),
    pytest.param("2026-04-15T15:00Z", utc(2026, 4, 15, 15, 0), id="iso-z"),
    pytest.param("2026-04-15T15:00+02:00", utc(2026, 4, 15, 13, 0), id="iso-plus-offset"),
    pytest.param("2026-04-15T15:00-0500", utc(2026, 4, 15, 20, 0), id="iso-minus-offset-no-colon"),
    pytest.param("2026-04-15T15:00+05:30", utc(2026, 4, 15, 9, 30), id="iso-half-hour-offset"),
    pytest.param("2026-03-28T19:01Z", utc(2026, 3, 28, 19, 1), id="one-minute-ahead"),
])
def test_forms_in_utc(text: str | None, at: datetime) -> None:
    assert parse_snooze(text, NOW) == Wake(at, None)


@pytest.mark.parametrize(("tz", "now", "text", "at"), [
    # Berlin springs forward at 02:00 on Sunday 2026-03-29: days after it are on CEST (UTC+2).
    pytest.param("Europe/Berlin", NOW, "tomorrow", utc(2026, 3, 29, 7, 0), id="berlin-tomorrow-is-cest"),
    pytest.param("Europe/Berlin", NOW, "2026-03-29", utc(2026, 3, 29, 7, 0), id="berlin-date-across-dst"),
    pytest.param("Europe/Berlin", NOW, "monday", utc(2026, 3, 30, 7, 0), id="berlin-monday"),
    pytest.param("Europe/Berlin", NOW, "3d", utc(2026, 3, 31, 19, 0), id="berlin-3d-is-72-real-hours"),
    pytest.param("Europe/Berlin", NOW, "", utc(2026, 3, 29, 19, 0), id="berlin-default-is-24-hours"),
    pytest.param("Europe/Berlin", NOW, "2026-03-29T02:30", utc(2026, 3, 29, 1, 30), id="berlin-skipped-hour-forward"),
    pytest.param("Europe/Berlin", NOW, "2026-03-29T01:30", utc(2026, 3, 29, 0, 30), id="berlin-before-the-gap"),
    pytest.param("Europe/Berlin", NOW, "2026-04-15T15:00", utc(2026, 4, 15, 13, 0), id="berlin-local-time"),
    pytest.param("Europe/Berlin", NOW, "2026-04-15T15:00Z", utc(2026, 4, 15, 15, 0), id="berlin-explicit-offset-wins"),
    # 00:30 on Saturday in Berlin is still Friday in UTC: days are the local calendar's.
    pytest.param("Europe/Berlin", utc(2026, 3, 27, 23, 30), "tomorrow", utc(2026, 3, 29, 7, 0),
                 id="berlin-after-local-midnight"),
    pytest.param("Europe/Berlin", utc(2026, 3, 27, 23, 30), "saturday", utc(2026, 4, 4, 7, 0),
                 id="berlin-local-weekday-is-today"),
    # New York falls back at 02:00 on Sunday 2026-11-01: 01:30 happens twice.
    pytest.param("America/New_York", utc(2026, 10, 31, 22, 0), "tomorrow", utc(2026, 11, 1, 14, 0),
                 id="new-york-tomorrow-is-est"),
    pytest.param("America/New_York", utc(2026, 10, 31, 22, 0), "2026-11-01T01:30", utc(2026, 11, 1, 5, 30),
                 id="new-york-repeated-hour-is-the-first"),
    pytest.param("America/New_York", utc(2026, 10, 31, 22, 0), "1d", utc(2026, 11, 1, 22, 0),
                 id="new-york-1d-is-24-real-hours"),
    pytest.param("America/New_York", utc(2026, 10, 31, 22, 0), "sunday", utc(2026, 11, 1, 14, 0),
                 id="new-york-sunday"),
    # New York springs forward at 02:00 on Sunday 2026-03-08.
    pytest.param("America/New_York", utc(2026, 3, 7, 12, 0), "2026-03-08T02:30", utc(2026, 3, 8, 7, 30),
                 id="new-york-skipped-hour-forward"),
    pytest.param("America/New_York", utc(2026, 3, 7, 12, 0), "tomorrow", utc(2026, 3, 8, 13, 0),
                 id="new-york-tomorrow-is-edt"),
    pytest.param("Asia/Kolkata", NOW, "tomorrow", utc(2026, 3, 30, 3, 30), id="kolkata-half-hour-zone"),
    pytest.param("Etc/UTC", NOW, "tomorrow", utc(2026, 3, 29, 9, 0), id="etc-utc"),
    pytest.param("Europe/Berlin", datetime.fromisoformat("2026-03-28T20:00+01:00"), "tomorrow",
                 utc(2026, 3, 29, 7, 0), id="now-in-any-offset"),
])
def test_timezones_and_dst(tz: str, now: datetime, text: str, at: datetime) -> None:
    wake = parse_snooze(text, now, tz)
    assert wake == Wake(at, None)
    assert wake.at is not None and wake.at.tzinfo is UTC


@pytest.mark.parametrize(("text", "note"), [
    ("200d", "`200d` is more than 90 days away, so it is snoozed for 90 days, until 2026-06-26 19:00 UTC."),
    ("91d", "`91d` is more than 90 days away, so it is snoozed for 90 days, until 2026-06-26 19:00 UTC."),
    ("13w", "`13w` is more than 90 days away, so it is snoozed for 90 days, until 2026-06-26 19:00 UTC."),
    ("999999w", "`999999w` is more than 90 days away, so it is snoozed for 90 days, until 2026-06-26 19:00 UTC."),
    ("2026-12-01", "`2026-12-01` is more than 90 days away, so it is snoozed for 90 days, until 2026-06-26 19:00 UTC."),
    ("9999-12-31T23:59Z", "`9999-12-31T23:59Z` is more than 90 days away, so it is snoozed for 90 days, "
                          "until 2026-06-26 19:00 UTC."),
])
def test_more_than_90_days_is_capped_with_a_note(text: str, note: str) -> None:
    assert parse_snooze(text, NOW) == Wake(utc(2026, 6, 26, 19, 0), None, note)


def test_the_cap_note_is_in_local_time() -> None:
    wake = parse_snooze("2026-12-01", NOW, "Europe/Berlin")
    assert wake.at == utc(2026, 6, 26, 19, 0)
    assert wake.note is not None and wake.note.endswith("until 2026-06-26 21:00 Europe/Berlin.")


@pytest.mark.parametrize(("text", "issue"), [("until #123", 123), ("UNTIL #7", 7), ("until#8", 8),
                                             ("until # 9", 9), ("until #0042", 42)])
def test_until_an_issue_closes(text: str, issue: int) -> None:
    assert parse_snooze(text, NOW) == Wake(None, issue)


GENERIC = "`/mull snooze` needs a time like `3d`, `tomorrow`, `monday`, `2026-12-01` or `until #123`, not `{}`."
PAST = "`{}` is in the past ({}); `/mull snooze` needs a future time like `3d`, `tomorrow`, `monday`, " \
       "`2026-12-01` or `until #123`."
NOT_A_DATE = "`{}` is not a real date and time; write it like `2026-12-01` or `2026-12-01T15:00`."
NOT_AN_ISSUE = "`/mull snooze until` needs an issue or pull request number like `until #123`, not `{}`."


@pytest.mark.parametrize(("text", "message"), [
    *((junk, GENERIC.format(junk)) for junk in [
        "whenever", "soon", "later", "now", "today", "yesterday", "a", "12", "3", "3x", "3 fortnights", "-3d",
        "1.5h", "1h30m", "in 3 days", "3 days from now", "tomorrow morning", "tomorrow 15:00", "next", "next month",
        "next year", "monday 9am", "dec 1", "2026-2-3", "2026/12/01", "01-12-2026", "until", "until whenever",
        "for", "for tomorrow", "until 3d", "1234567d", "٣d", "٢٠٢٦-١٢-٠١",
    ]),
    ("soon`ish", GENERIC.format("soon'ish")),
    ("x" * 60, GENERIC.format("x" * 39 + "…")),
    ("0m", "`/mull snooze` needs a duration above zero, like `30m` or `3d`, not `0m`."),
    ("0 days", "`/mull snooze` needs a duration above zero, like `30m` or `3d`, not `0 days`."),
    ("2026-03-01", PAST.format("2026-03-01", "2026-03-01 09:00 UTC")),
    ("2026-03-28", PAST.format("2026-03-28", "2026-03-28 09:00 UTC")),
    ("2026-03-28T18:59Z", PAST.format("2026-03-28T18:59Z", "2026-03-28 18:59 UTC")),
    ("2026-03-28T19:00Z", PAST.format("2026-03-28T19:00Z", "2026-03-28 19:00 UTC")),
    ("2025-12-01T15:00+02:00", PAST.format("2025-12-01T15:00+02:00", "2025-12-01 13:00 UTC")),
    ("0001-01-01", PAST.format("0001-01-01", "0001-01-01 09:00 UTC")),
    ("2026-13-01", NOT_A_DATE.format("2026-13-01")),
    ("2026-02-30", NOT_A_DATE.format("2026-02-30")),
    ("2026-04-15T25:00", NOT_A_DATE.format("2026-04-15T25:00")),
    ("2026-04-15T15:61", NOT_A_DATE.format("2026-04-15T15:61")),
    ("2026-04-15T15:00+24:00", NOT_A_DATE.format("2026-04-15T15:00+24:00")),
    ("2026-04-15T15:00+05:99", NOT_A_DATE.format("2026-04-15T15:00+05:99")),
    ("until #0", "Issue and pull request numbers start at 1; write one like `until #123`."),
    ("until 12", "Write the issue or pull request number with a `#`, like `until #12`."),
    ("until #abc", NOT_AN_ISSUE.format("until #abc")),
    ("until #", NOT_AN_ISSUE.format("until #")),
    ("until #12abc", NOT_AN_ISSUE.format("until #12abc")),
    ("until #-1", NOT_AN_ISSUE.format("until #-1")),
    ("until #١٢", NOT_AN_ISSUE.format("until #١٢")),
    ("until #12345678901", NOT_AN_ISSUE.format("until #12345678901")),
])
def test_errors_say_what_to_write(text: str, message: str) -> None:
    with pytest.raises(SnoozeError) as caught:
        parse_snooze(text, NOW)
    assert str(caught.value) == message
    assert "\n" not in message


def test_past_times_are_shown_in_local_time() -> None:
    with pytest.raises(SnoozeError, match=r"\(2026-03-28 09:00 Europe/Berlin\)"):
        parse_snooze("2026-03-28", NOW, "Europe/Berlin")


@pytest.mark.parametrize(("text", "tz"), [("0001-01-01", "Asia/Kamchatka"), ("0001-01-01T00:00+05:00", "UTC")])
def test_a_time_before_year_1_in_utc_is_refused(text: str, tz: str) -> None:
    with pytest.raises(SnoozeError, match="is not a real date and time"):
        parse_snooze(text, NOW, tz)


@pytest.mark.parametrize("tz", ["Mars/Olympus", "", "Europe", "../etc/passwd", "/etc/localtime", "Europe/Berlin ",
                                "Europe/Berlin\0"])
@pytest.mark.parametrize("text", ["3d", "until #12"])
def test_a_bad_timezone_names_the_setting(tz: str, text: str) -> None:
    with pytest.raises(SnoozeError) as caught:
        parse_snooze(text, NOW, tz)
    message = str(caught.value)
    assert message.startswith("`timezone` in `.github/mull.yml` is `")
    assert message.endswith("which is not an IANA timezone name like `Europe/Berlin` or `UTC`.")
    assert "\n" not in message


def test_quoted_text_is_printable() -> None:
    with pytest.raises(SnoozeError, match=r"is `Europe/Berlin\?`, which"):
        parse_snooze("3d", NOW, "Europe/Berlin\0")


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_snooze("3d", datetime(2026, 3, 28, 19, 0))
