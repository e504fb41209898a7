"""Digest windows: the latest firing on the repository's wall clock, across weekends and daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from worker.views.digest_window import next_fire, window_key, window_start

BERLIN = "Europe/Berlin"  # 2026: clocks spring forward on Sunday 03-29 (02:00 → 03:00), fall back on Sunday 10-25
NEW_YORK = "America/New_York"  # 2026: forward on Sunday 03-08, back on Sunday 11-01
LA = "America/Los_Angeles"
WEEKDAYS = "0 9 * * 1-5"
DAILY = "0 9 * * *"


def at(tz: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0, fold: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(tz), fold=fold)


def in_utc(value: datetime | None) -> datetime | None:
    """Compare in UTC: an aware time in a repeated hour is never == to another zone's (PEP 495)."""
    return value and value.astimezone(UTC)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(("schedule", "tz", "now", "business", "expected"), [
    # Monday 2026-03-02, Friday 2026-02-27, Saturday 2026-03-07 (all in winter time).
    pytest.param(WEEKDAYS, BERLIN, at(BERLIN, 2026, 3, 2, 8, 59), True, utc(2026, 2, 27, 8), id="monday-0859"),
    pytest.param(WEEKDAYS, BERLIN, at(BERLIN, 2026, 3, 2, 9), True, utc(2026, 3, 2, 8), id="monday-0900-exactly"),
    pytest.param(WEEKDAYS, BERLIN, at(BERLIN, 2026, 3, 2, 9, 0) + timedelta(microseconds=1), True, utc(2026, 3, 2, 8),
                 id="just-after"),
    pytest.param(WEEKDAYS, BERLIN, at(BERLIN, 2026, 3, 2, 9) - timedelta(microseconds=1), True, utc(2026, 2, 27, 8),
                 id="just-before"),
    pytest.param(DAILY, BERLIN, at(BERLIN, 2026, 3, 7, 10), True, None, id="saturday-fire-skipped"),
    pytest.param(DAILY, BERLIN, at(BERLIN, 2026, 3, 7, 10), False, utc(2026, 3, 7, 8), id="saturday-fire-kept"),
    pytest.param(DAILY, BERLIN, at(BERLIN, 2026, 3, 7, 8), True, utc(2026, 3, 6, 8), id="saturday-before-its-fire"),
    pytest.param(WEEKDAYS, BERLIN, at(BERLIN, 2026, 3, 7, 10), True, utc(2026, 3, 6, 8), id="saturday-weekday-sched"),
    pytest.param(WEEKDAYS, BERLIN, at(BERLIN, 2026, 3, 8, 23, 59), True, utc(2026, 3, 6, 8), id="sunday-night"),
    pytest.param("@daily", BERLIN, at(BERLIN, 2026, 3, 4, 10, 30), True, utc(2026, 3, 3, 23), id="daily-macro"),
    pytest.param("@daily", BERLIN, at(BERLIN, 2026, 3, 7, 10, 30), True, None, id="daily-macro-saturday"),
    pytest.param("@hourly", BERLIN, at(BERLIN, 2026, 3, 4, 10, 30), True, utc(2026, 3, 4, 9), id="hourly-macro"),
    pytest.param("@weekly", BERLIN, at(BERLIN, 2026, 3, 4, 10), False, utc(2026, 2, 28, 23), id="weekly-sunday"),
    pytest.param("@weekly", BERLIN, at(BERLIN, 2026, 3, 4, 10), True, None, id="weekly-on-business-days-only"),
    pytest.param("*/15 9-17 * * 1-5", BERLIN, at(BERLIN, 2026, 3, 4, 12, 44), True, utc(2026, 3, 4, 11, 30),
                 id="every-15-minutes"),
    # `now` in UTC, the schedule in Los Angeles (UTC-8 in winter).
    pytest.param(WEEKDAYS, LA, utc(2026, 3, 3, 16, 30), True, utc(2026, 3, 2, 17), id="la-0830-tuesday"),
    pytest.param(WEEKDAYS, LA, utc(2026, 3, 3, 17), True, utc(2026, 3, 3, 17), id="la-0900-tuesday"),
    pytest.param(DAILY, LA, utc(2026, 3, 7, 3), True, utc(2026, 3, 6, 17), id="la-friday-evening-is-saturday-in-utc"),
    pytest.param(DAILY, LA, utc(2026, 3, 9, 7, 30), True, None, id="la-monday-0030-last-fired-sunday"),
    pytest.param(DAILY, "UTC", utc(2026, 3, 9, 7, 30), True, None, id="utc-monday-0730-last-fired-sunday"),
    pytest.param(DAILY, "UTC", utc(2026, 3, 9, 9, 30), True, utc(2026, 3, 9, 9), id="utc-monday-0930"),
    # 09:00 local on both sides of a clock change.
    pytest.param(WEEKDAYS, BERLIN, utc(2026, 3, 30, 6, 59), True, utc(2026, 3, 27, 8), id="berlin-spring-before"),
    pytest.param(WEEKDAYS, BERLIN, utc(2026, 3, 30, 7), True, utc(2026, 3, 30, 7), id="berlin-spring-after"),
    pytest.param(WEEKDAYS, BERLIN, utc(2026, 10, 26, 7, 59), True, utc(2026, 10, 23, 7), id="berlin-autumn-before"),
    pytest.param(WEEKDAYS, BERLIN, utc(2026, 10, 26, 8), True, utc(2026, 10, 26, 8), id="berlin-autumn-after"),
    pytest.param(WEEKDAYS, NEW_YORK, utc(2026, 3, 9, 12, 59), True, utc(2026, 3, 6, 14), id="new-york-spring-before"),
    pytest.param(WEEKDAYS, NEW_YORK, utc(2026, 3, 9, 13), True, utc(2026, 3, 9, 13), id="new-york-spring-after"),
    pytest.param(WEEKDAYS, NEW_YORK, utc(2026, 11, 2, 13, 59), True, utc(2026, 10, 30, 13), id="ny-autumn-before"),
    pytest.param(WEEKDAYS, NEW_YORK, utc(2026, 11, 2, 14), True, utc(2026, 11, 2, 14), id="new-york-autumn-after"),
    # 02:30 does not exist in Berlin on 2026-03-29: the firing happens when the clocks jump, 03:00 CEST (01:00 UTC).
    pytest.param("30 2 * * *", BERLIN, utc(2026, 3, 29, 0, 59), False, utc(2026, 3, 28, 1, 30), id="gap-before-jump"),
    pytest.param("30 2 * * *", BERLIN, utc(2026, 3, 29, 1), False, utc(2026, 3, 29, 1), id="gap-at-the-jump"),
    pytest.param("30 2 * * *", BERLIN, utc(2026, 3, 29, 1, 10), False, utc(2026, 3, 29, 1), id="gap-0310-cest"),
    pytest.param("30 2 * * *", BERLIN, utc(2026, 3, 29, 1, 40), False, utc(2026, 3, 29, 1), id="gap-0340-cest"),
    pytest.param("30 2 * * *", BERLIN, utc(2026, 3, 29, 1, 40), True, None, id="gap-on-a-sunday"),
    pytest.param("30 2 * * *", BERLIN, utc(2026, 3, 30, 0, 30), False, utc(2026, 3, 30, 0, 30), id="gap-next-day"),
    # 02:30 happens twice in Berlin on 2026-10-25 (CEST 00:30 UTC, then CET 01:30 UTC): the first one only.
    pytest.param("30 2 * * *", BERLIN, utc(2026, 10, 25, 0, 29), False, utc(2026, 10, 24, 0, 30), id="fold-before"),
    pytest.param("30 2 * * *", BERLIN, utc(2026, 10, 25, 0, 30), False, utc(2026, 10, 25, 0, 30), id="fold-first"),
    pytest.param("30 2 * * *", BERLIN, utc(2026, 10, 25, 1, 10), False, utc(2026, 10, 25, 0, 30),
                 id="fold-second-0210-already-fired"),
    pytest.param("30 2 * * *", BERLIN, utc(2026, 10, 25, 1, 40), False, utc(2026, 10, 25, 0, 30),
                 id="fold-no-second-firing"),
    pytest.param("30 2 * * *", BERLIN, at(BERLIN, 2026, 10, 25, 2, 10, fold=1), False, utc(2026, 10, 25, 0, 30),
                 id="fold-second-0210-given-in-berlin"),
    pytest.param("0 9 30 2 *", BERLIN, utc(2026, 3, 1), False, None, id="never-fires"),
])
def test_window_start(schedule: str, tz: str, now: datetime, business: bool, expected: datetime | None) -> None:
    start = window_start(schedule, tz, now, business)
    assert in_utc(start) == expected
    if start is not None:
        assert start.tzinfo == ZoneInfo(tz)
        assert start.utcoffset() == start.astimezone(UTC).astimezone(ZoneInfo(tz)).utcoffset()


def test_the_window_is_in_local_wall_time() -> None:
    for now in (utc(2026, 3, 27, 12), utc(2026, 3, 30, 12), utc(2026, 10, 23, 12), utc(2026, 10, 26, 12)):
        start = window_start(WEEKDAYS, BERLIN, now, True)
        assert start is not None and (start.hour, start.minute) == (9, 0)
        assert (next_fire(WEEKDAYS, BERLIN, now, True).hour, next_fire(WEEKDAYS, BERLIN, now, True).minute) == (9, 0)


@pytest.mark.parametrize(("schedule", "tz", "now", "business", "expected"), [
    pytest.param(DAILY, BERLIN, at(BERLIN, 2026, 3, 6, 10), True, utc(2026, 3, 9, 8), id="skips-the-weekend"),
    pytest.param(DAILY, BERLIN, at(BERLIN, 2026, 3, 6, 10), False, utc(2026, 3, 7, 8), id="keeps-the-weekend"),
    pytest.param(WEEKDAYS, BERLIN, at(BERLIN, 2026, 3, 6, 9), True, utc(2026, 3, 9, 8), id="strictly-after"),
    pytest.param(WEEKDAYS, BERLIN, at(BERLIN, 2026, 3, 6, 8, 59), True, utc(2026, 3, 6, 8), id="later-today"),
    pytest.param("@hourly", BERLIN, at(BERLIN, 2026, 3, 6, 23, 30), True, utc(2026, 3, 8, 23), id="hourly-to-monday"),
    pytest.param(WEEKDAYS, BERLIN, utc(2026, 3, 27, 8), True, utc(2026, 3, 30, 7), id="across-spring-forward"),
    pytest.param(WEEKDAYS, BERLIN, utc(2026, 10, 23, 7), True, utc(2026, 10, 26, 8), id="across-fall-back"),
    pytest.param(WEEKDAYS, LA, utc(2026, 3, 7, 3), True, utc(2026, 3, 9, 16), id="la-across-spring-forward"),
    pytest.param("30 2 * * *", BERLIN, utc(2026, 3, 29, 0, 59), False, utc(2026, 3, 29, 1), id="gap-fires-at-jump"),
    pytest.param("30 2 * * *", BERLIN, utc(2026, 3, 29, 1), False, utc(2026, 3, 30, 0, 30), id="after-the-gap"),
    pytest.param("30 2 * * *", BERLIN, utc(2026, 10, 25, 0, 30), False, utc(2026, 10, 26, 1, 30), id="fold-once"),
    pytest.param("30 2 * * *", BERLIN, utc(2026, 10, 25, 1, 10), False, utc(2026, 10, 26, 1, 30),
                 id="fold-second-occurrence"),
])
def test_next_fire(schedule: str, tz: str, now: datetime, business: bool, expected: datetime) -> None:
    fire = next_fire(schedule, tz, now, business)
    assert fire.astimezone(UTC) == expected and fire.tzinfo == ZoneInfo(tz)


@pytest.mark.parametrize(("schedule", "business"), [("0 9 * * 6,0", True), ("0 9 30 2 *", False)])
def test_next_fire_says_when_there_is_none(schedule: str, business: bool) -> None:
    with pytest.raises(ValueError, match="never fires"):
        next_fire(schedule, BERLIN, utc(2026, 3, 4), business)


@pytest.mark.parametrize(("tz", "day"), [
    (BERLIN, "2026-03-29"), (BERLIN, "2026-10-25"), (NEW_YORK, "2026-03-08"), (NEW_YORK, "2026-11-01"),
    (LA, "2026-03-08"), (LA, "2026-11-01"), ("Australia/Lord_Howe", "2026-04-05"),  # a half-hour change
    ("Australia/Lord_Howe", "2026-10-04"), ("UTC", "2026-03-29"),
])
@pytest.mark.parametrize("schedule", ["30 2 * * *", "0,30 1-3 * * *", "*/20 * * * *", "15 2 * * 0", WEEKDAYS])
def test_windows_tile_time_across_clock_changes(tz: str, day: str, schedule: str) -> None:
    """Every instant belongs to exactly one window: the one that started last and ends at the next firing."""
    now = datetime.fromisoformat(day).replace(tzinfo=ZoneInfo(tz)).astimezone(UTC) - timedelta(hours=2)
    end = now + timedelta(hours=24)
    keys = set()
    while now < end:  # in UTC: adding a timedelta to a zoned datetime is wall-clock arithmetic
        start, fire = window_start(schedule, tz, now, False), next_fire(schedule, tz, now, False)
        assert start is not None
        start, fire = start.astimezone(UTC), fire.astimezone(UTC)
        assert start <= now < fire
        assert in_utc(window_start(schedule, tz, fire, False)) == fire
        assert in_utc(window_start(schedule, tz, fire - timedelta(microseconds=1), False)) == start
        keys.add(window_key(start))
        now += timedelta(minutes=7)
    if schedule == "30 2 * * *":
        assert len(keys) == 2  # the day before's and the day's: never a second one in a repeated hour


@pytest.mark.parametrize(("start", "key"), [
    (utc(2026, 3, 27, 8), "2026-03-27T08:00Z"),
    (at(BERLIN, 2026, 3, 27, 9), "2026-03-27T08:00Z"),
    (at(NEW_YORK, 2026, 3, 27, 4), "2026-03-27T08:00Z"),
    (utc(2026, 3, 27, 8, 0) + timedelta(seconds=59, microseconds=999), "2026-03-27T08:00Z"),
    (at(BERLIN, 2026, 10, 25, 2, 30, fold=0), "2026-10-25T00:30Z"),
    (at(BERLIN, 2026, 10, 25, 2, 30, fold=1), "2026-10-25T01:30Z"),
])
def test_window_key(start: datetime, key: str) -> None:
    assert window_key(start) == key


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        window_start(DAILY, BERLIN, datetime(2026, 3, 4, 9), True)
    with pytest.raises(ValueError, match="timezone-aware"):
        next_fire(DAILY, BERLIN, datetime(2026, 3, 4, 9), True)
    with pytest.raises(ValueError, match="timezone-aware"):
        window_key(datetime(2026, 3, 4, 9))
