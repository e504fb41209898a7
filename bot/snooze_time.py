"""When a ``/mull snooze`` ends, from the few forms people type.

The grammar is small and exact on purpose: "I don't understand `whenever`" is a better answer than a wake-up
at a time nobody meant. Days without a clock time mean 09:00 in the repository's timezone, computed with
zoneinfo so that daylight-saving changes land on the right hour; durations are real elapsed time, so ``3d``
across a clock change is 72 hours (a snooze is a delay, not an appointment).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

DEFAULT = timedelta(days=1)
LONGEST = timedelta(days=90)
MORNING = time(9, 0)
EXAMPLE = "`3d`, `tomorrow`, `monday`, `2026-12-01` or `until #123`"

_UNITS = {
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), timedelta(minutes=1)),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), timedelta(hours=1)),
    **dict.fromkeys(("d", "day", "days"), timedelta(days=1)),
    **dict.fromkeys(("w", "wk", "wks", "week", "weeks"), timedelta(weeks=1)),
}
_WEEKDAYS = {
    **dict.fromkeys(("monday", "mon"), 0),
    **dict.fromkeys(("tuesday", "tue", "tues"), 1),
    **dict.fromkeys(("wednesday", "wed"), 2),
    **dict.fromkeys(("thursday", "thu", "thur", "thurs"), 3),
    **dict.fromkeys(("friday", "fri"), 4),
    **dict.fromkeys(("saturday", "sat"), 5),
    **dict.fromkeys(("sunday", "sun"), 6),
}
_DURATION = re.compile(r"(?:for )?(\d{1,6}) ?([a-z]+)", re.ASCII)
_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[t ](\d{2}):(\d{2})(?::(\d{2}))?(z|[+-]\d{2}:?\d{2})?)?",
    re.ASCII,
)
_SHOWN = 40


@dataclass(frozen=True)
class Wake:
    """When a snooze ends: at a time, or when an issue or pull request closes."""

    at: datetime | None  # aware, UTC
    until_issue: int | None
    note: str | None = None  # one line for the reply, e.g. that the time was capped


class SnoozeError(ValueError):
    """A snooze time that cannot be used; the message is a one-line reply with an example."""


def parse_snooze(text: str | None, now: datetime, tz: str = "UTC") -> Wake:
    """Resolve ``/mull snooze`` arguments at ``now`` in timezone ``tz`` (``timezone`` in ``.github/mull.yml``)."""
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    zone = _zone(tz)
    shown = " ".join((text or "").split())
    when = shown.lower()
    now = now.astimezone(UTC)
    target = when.removeprefix("until").lstrip()
    if target != when and (target.startswith("#") or target.isdigit()):
        return _until_issue(target, shown)
    at = _resolve(when, shown, now, zone)
    if at <= now:
        raise SnoozeError(f"`{_shown(shown)}` is in the past ({_local(at, zone, tz)}); "
                          f"`/mull snooze` needs a future time like {EXAMPLE}.")
    if at - now > LONGEST:
        capped = now + LONGEST
        return Wake(capped, None, f"`{_shown(shown)}` is more than 90 days away, so it is snoozed for 90 days, "
                                  f"until {_local(capped, zone, tz)}.")
    return Wake(at, None)


def _resolve(when: str, shown: str, now: datetime, zone: tzinfo) -> datetime:
    if not when:
        return now + DEFAULT
    duration = _DURATION.fullmatch(when)
    if duration and duration.group(2) in _UNITS:
        return _after(now, int(duration.group(1)) * _UNITS[duration.group(2)], shown)
    word = when.removeprefix("until ")
    iso = _ISO.fullmatch(word)
    if iso:
        return _iso(iso, shown, zone)
    today = now.astimezone(zone).date()
    if word == "tomorrow":
        return _wall(today + timedelta(days=1), MORNING, zone)
    if word == "next week":
        word = "monday"
    weekday = _WEEKDAYS.get(word.removeprefix("next "))
    if weekday is not None:
        ahead = (weekday - today.weekday()) % 7 or 7  # never today: on a Monday, `monday` is a week away
        return _wall(today + timedelta(days=ahead), MORNING, zone)
    raise SnoozeError(f"`/mull snooze` needs a time like {EXAMPLE}, not `{_shown(shown)}`.")


def _after(now: datetime, delta: timedelta, shown: str) -> datetime:
    if not delta:
        raise SnoozeError(f"`/mull snooze` needs a duration above zero, like `30m` or `3d`, not `{_shown(shown)}`.")
    return now + min(delta, LONGEST + timedelta(days=1))  # past the cap either way, and `999999w` cannot overflow


def _iso(match: re.Match[str], shown: str, zone: tzinfo) -> datetime:
    year, month, day, hour, minute, second, offset = match.groups()
    try:
        on = date(int(year), int(month), int(day))
        clock = MORNING if hour is None else time(int(hour), int(minute), int(second or 0))
        if offset is None:
            return _wall(on, clock, zone)
        return datetime.combine(on, clock, _offset(offset)).astimezone(UTC)
    except (ValueError, OverflowError):  # no such day or time, or before year 1 in UTC
        raise SnoozeError(f"`{_shown(shown)}` is not a real date and time; write it like `2026-12-01` "
                          "or `2026-12-01T15:00`.") from None


def _offset(text: str) -> tzinfo:
    if text == "z":
        return UTC
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:])
    if minutes > 59:
        raise ValueError(f"offset minutes {minutes}")
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if text[0] == "-" else delta)  # ValueError from 24 hours on


def _wall(on: date, clock: time, zone: tzinfo) -> datetime:
    """A wall-clock time in ``zone`` as UTC.

    A time skipped when clocks spring forward moves forward by the gap (02:30 becomes 03:30); a time that
    happens twice when they fall back means the first (fold=0).
    """
    return datetime.combine(on, clock, zone).astimezone(UTC)


def _until_issue(target: str, shown: str) -> Wake:
    """``target`` follows ``until``: ``#123`` (``123`` is refused, as it may be a date someone meant)."""
    hash_, number = ("#", target[1:].strip()) if target.startswith("#") else ("", target)
    if not number.isascii() or not number.isdigit() or len(number) > 10:
        raise SnoozeError(f"`/mull snooze until` needs an issue or pull request number like `until #123`, "
                          f"not `{_shown(shown)}`.")
    if not hash_:
        raise SnoozeError(f"Write the issue or pull request number with a `#`, like `until #{int(number)}`.")
    if int(number) == 0:
        raise SnoozeError("Issue and pull request numbers start at 1; write one like `until #123`.")
    return Wake(None, int(number))


def _zone(tz: str) -> tzinfo:
    if tz == "UTC":
        return UTC  # no tz database needed for the default
    try:
        return ZoneInfo(tz)
    except (KeyError, ValueError, OSError):  # unknown name, a path, a directory such as `Europe`
        raise SnoozeError(f"`timezone` in `.github/mull.yml` is `{_shown(tz)}`, which is not an IANA timezone "
                          "name like `Europe/Berlin` or `UTC`.") from None


def _local(at: datetime, zone: tzinfo, tz: str) -> str:
    return f"{at.astimezone(zone).replace(tzinfo=None).isoformat(' ', 'minutes')} {tz}"  # %Y drops zeros


def _shown(text: str) -> str:
    """Someone's text, safe inside a code span of a reply."""
    text = "".join(c if c.isprintable() else "?" for c in text).replace("`", "'")
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"
