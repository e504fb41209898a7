"""When a review digest is due: the schedule's latest firing, read on the repository's wall clock.

A digest goes out once per window, the time from one firing of ``digest.schedule`` to the next, so a worker
that wakes late (or twice) still sends exactly one. croniter is given naive wall-clock times and the results
are placed in the zone here, instead of handing it aware datetimes: croniter 7 with an aware start fires a
daily schedule twice on the night clocks fall back (02:30 CEST, then 02:30 CET an hour later). Here a firing
in the repeated hour happens once, at its first occurrence, and a firing in the hour skipped when clocks
spring forward happens at the moment they jump, as cron does: ``30 2 * * *`` in Europe/Berlin fires at 03:00
CEST on 2026-03-29. Both rules keep firings in wall-clock order, which is what makes "the latest firing at or
before now" a short walk back from the wall clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter

WEEKEND = frozenset({5, 6})  # datetime.weekday(): Saturday, Sunday
_STEPS = 500  # candidate firings looked at before giving up; a weekday firing always comes far sooner


def window_start(schedule: str, tz: str, now: datetime, business_days_only: bool) -> datetime | None:
    """The latest firing of ``schedule`` at or before ``now``, in ``tz``; None when that window has no digest.

    None means the firing fell on a Saturday or Sunday in ``tz`` with ``business_days_only`` (or the schedule
    never fires, like ``0 9 30 2 *``). Compare results in UTC or by ``window_key``: a time in a repeated hour is
    never ``==`` to a datetime of another zone (PEP 495), and two of the same zone compare by wall clock.
    """
    zone, now = ZoneInfo(tz), _utc(now)
    local = now.astimezone(zone)
    # In the repeated hour after clocks fall back, wall times up to one shift later have already happened.
    repeat = max(_offset(local.replace(fold=0)) - _offset(local), timedelta(0))
    cron = croniter(schedule, local.replace(tzinfo=None) + repeat + timedelta(minutes=1))
    try:
        for _ in range(_STEPS):
            start = _place(cron.get_prev(datetime), zone)
            if start.astimezone(UTC) <= now:
                return None if business_days_only and start.weekday() in WEEKEND else start
    except CroniterBadDateError:
        pass
    return None


def next_fire(schedule: str, tz: str, now: datetime, business_days_only: bool) -> datetime:
    """The first firing strictly after ``now`` that sends a digest, in ``tz``, for "next digest at".

    Raises ValueError when there is none: the schedule never fires, or only on weekends with
    ``business_days_only``.
    """
    zone, now = ZoneInfo(tz), _utc(now)
    cron = croniter(schedule, now.astimezone(zone).replace(tzinfo=None))
    try:
        for _ in range(_STEPS):
            at = _place(cron.get_next(datetime), zone)
            if at.astimezone(UTC) <= now:  # the rest of a repeated hour that already happened once
                continue
            if not (business_days_only and at.weekday() in WEEKEND):
                return at
            monday = at.date() + timedelta(days=7 - at.weekday())
            cron = croniter(schedule, datetime.combine(monday, time()) - timedelta(seconds=1))
    except CroniterBadDateError:
        pass
    days = " on a business day" if business_days_only else ""
    raise ValueError(f"the digest schedule '{schedule}' never fires{days}")


def window_key(start: datetime) -> str:
    """A window's stable id, its start as a UTC minute (``2026-03-27T08:00Z``), for once-per-window dedupe."""
    return _utc(start).strftime("%Y-%m-%dT%H:%MZ")


def _utc(at: datetime) -> datetime:
    """``at`` in UTC. Compare instants there: datetimes sharing a tzinfo compare by wall clock, ignoring fold."""
    if at.utcoffset() is None:
        raise ValueError("datetime must be timezone-aware")
    return at.astimezone(UTC)


def _offset(at: datetime) -> timedelta:
    return at.utcoffset() or timedelta(0)


def _place(wall: datetime, zone: ZoneInfo) -> datetime:
    """A naive wall-clock firing as an instant in ``zone``: a repeated time is its first occurrence, and a
    skipped one is the moment the clocks jumped over it."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC).astimezone(zone)
    if first.replace(tzinfo=None) == wall:
        return first
    # ``wall`` is in a gap: fold=1 reads it with the offset after the jump, an instant before the jump, and
    # fold=0 with the offset before it, an instant after. The jump lies between; find its second.
    before = int(wall.replace(tzinfo=zone, fold=1).timestamp())
    after = int(first.timestamp())
    offset = _offset(first)
    while after - before > 1:
        middle = (before + after) // 2
        if _offset(datetime.fromtimestamp(middle, zone)) == offset:
            after = middle
        else:
            before = middle
    return datetime.fromtimestamp(after, zone)
