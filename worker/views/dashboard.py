"""The body of the one "Mull review queue" issue per repository: what waits for review, what is held, what comes next.

Mull edits that issue in place whenever the backlog changes, so the body is a pure function of its inputs: the
same items, ``now`` and settings give byte-identical text (and no needless edit). Nothing in it may ping
anyone: titles and reasons are user text, so ``@`` is defused, tables are kept intact and HTML stays inert.
Queue and held positions come from ``positions`` and ``held_positions``, which status comments use as well,
so an issue never reads "2 ahead" in one place and "3 ahead" in another.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

from worker.backlog.state import HELD_BY, Item, ItemState, held_order, queue_order
from worker.views import defuse, markers

TITLE = "Mull review queue"
KIND = "dashboard"
MARKER = markers.dump(KIND)  # the body's last line: how Mull knows its own dashboard
ROWS = 50  # per section; the rest is counted
BODY_LIMIT = 60_000  # characters; GitHub refuses issue bodies over 65,536
TITLE_CHARS = 100
REASON_CHARS = 200
_LINE_BREAKS = re.compile(r"\s+")
_LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def positions(items: Iterable[Item]) -> dict[int, int]:
    """Queued issue -> how many queued issues are ahead of it (0: it is next)."""
    queued = sorted((item for item in items if item.state is ItemState.QUEUED), key=queue_order)
    return {item.issue: ahead for ahead, item in enumerate(queued)}


def held_positions(items: Iterable[Item]) -> dict[int, int]:
    """Held issue -> its place in line for a free review slot (0: it leaves draft next)."""
    held = sorted((item for item in items if item.state is ItemState.HELD), key=held_order)
    return {item.issue: place for place, item in enumerate(held)}


def review_order(item: Item) -> tuple[int, float, int]:
    """Awaiting reviews, smallest critique effort first (unknown last), then the longest waiting."""
    return (item.effort if item.effort is not None else 6, item.since, item.issue)


def inline(text: str, limit: int) -> str:
    """User text as one line of Markdown that pings no one, cannot open HTML or a comment, nor split a table cell."""
    text = _LINE_BREAKS.sub(" ", text).strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return defuse.markdown(text.replace("\\", "\\\\").replace("|", "\\|"))


def waited(since: float, now: float) -> str:
    """Coarse age: "<1h", "5h" (under two days), "3d"; "—" when ``since`` is unknown (0)."""
    if since <= 0:
        return "—"
    seconds = max(0.0, now - since)
    if seconds < 3600:
        return "<1h"
    if seconds < 48 * 3600:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 86400)}d"


def zone(tz: str) -> tzinfo:
    """``tz`` is an IANA name (the repo config validates it); UTC needs no time zone database."""
    return UTC if tz == "UTC" else ZoneInfo(tz)


def local_time(when: datetime | float, tz: str, now: float) -> str:
    """``Mon 30 Nov 09:00 CET`` in ``tz``, the year added when it is not ``now``'s; English whatever the locale.

    A naive datetime is read as UTC, never as the machine's local time."""
    if isinstance(when, datetime):
        moment = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    else:
        moment = datetime.fromtimestamp(when, UTC)
    place = zone(tz)
    local = moment.astimezone(place)
    year = "" if local.year == datetime.fromtimestamp(now, UTC).astimezone(place).year else f" {local.year}"
    return (f"{_DAYS[local.weekday()]} {local.day} {_MONTHS[local.month - 1]}{year} "
            f"{local:%H:%M} {local.tzname() or tz}")


def ordinal_place(place: int) -> str:
    """0 -> "next", 1 -> "2nd in line", 10 -> "11th in line"."""
    if place == 0:
        return "next"
    n = place + 1
    suffix = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix} in line"


def render_dashboard(repo: str, items: list[Item], *, cap: int, in_flight: int, now: float, tz: str,
                     next_digest: datetime | None, html_base: str) -> str:
    """The issue body for ``repo`` (``owner/name``).

    ``items`` are the repo's backlog records; ``cap`` is ``max_awaiting_review``; ``in_flight`` counts the
    agent runs going now; ``now`` (epoch seconds) is the only clock read; ``tz`` is the repo's IANA time zone
    for wake and digest times; ``next_digest`` is when the next digest goes out, if one is scheduled;
    ``html_base`` is the repo's web address (``https://github.com/acme/widgets``), for profile links.
    Sections shrink to fewer rows each when the body would pass GitHub's size limit.
    """
    body = ""
    for rows in (ROWS, 20, 10, 5):
        body = _render(repo, items, cap, in_flight, now, tz, next_digest, html_base.rstrip("/"), rows)
        if len(body) <= BODY_LIMIT:
            break
    return body


def _render(repo: str, items: list[Item], cap: int, in_flight: int, now: float, tz: str,
            next_digest: datetime | None, html_base: str, rows: int) -> str:
    by_state: dict[ItemState, list[Item]] = {state: [] for state in ItemState}
    for item in items:
        by_state[item.state].append(item)
    sections = [
        _awaiting(by_state[ItemState.AWAITING], cap, now, html_base, rows),
        _held(items, by_state[ItemState.HELD], rows),
        _table("Drafts under critique", sorted(by_state[ItemState.DRAFT], key=_oldest), rows,
               ("PR", "Issue", "Title", "Effort", "For"),
               lambda i: (_ref(i.pr), _ref(i.issue), _title(i), _effort(i), waited(i.since, now))),
        _working(sorted(by_state[ItemState.WORKING], key=_oldest), in_flight, now, rows),
        _queued(items, by_state[ItemState.QUEUED], now, rows),
        _table("Waiting for an answer", sorted(by_state[ItemState.WAITING], key=_oldest), rows,
               ("Issue", "PR", "Title", "Waiting for", "Since"),
               lambda i: (_ref(i.issue), _ref(i.pr), _title(i), _reason(i), waited(i.since, now))),
        _table("Snoozed", sorted(by_state[ItemState.SNOOZED], key=_wake_order), rows,
               ("Issue", "PR", "Title", "Wakes", "Snoozed"),
               lambda i: (_ref(i.issue), _ref(i.pr), _title(i), _wakes(i, tz, now),
                          f"{i.snoozes} times" if i.snoozes >= 2 else "")),
        _failed(sorted(by_state[ItemState.FAILED], key=_oldest), now, rows),
    ]
    shown = [section for section in sections if section]
    head = f"Mull's work in [{repo}]({html_base}): pull requests that wait for review, and the issues on their way."
    body = [head, *shown] if shown else [
        head, "The queue is empty: no pull request waits for review and no labeled issue is queued."]
    return "\n\n".join([*body, _footer(next_digest, tz, now)]) + "\n"


def _awaiting(awaiting: list[Item], cap: int, now: float, html_base: str, rows: int) -> str:
    return _table(f"Awaiting review ({len(awaiting)} of {cap})", sorted(awaiting, key=review_order), rows,
                  ("PR", "Issue", "Title", "Effort", "Waiting", "Reviewers"),
                  lambda i: (_ref(i.pr), _ref(i.issue), _title(i), _effort(i), waited(i.since, now),
                             ", ".join(_person(login, html_base) for login in i.reviewers) or "—"))


def _held(items: list[Item], held: list[Item], rows: int) -> str:
    place = held_positions(items)
    return _table("Held as drafts — waiting for a review slot", sorted(held, key=lambda i: place[i.issue]), rows,
                  ("Place", "PR", "Issue", "Title", "Effort", "Waits for"),
                  lambda i: (ordinal_place(place[i.issue]), _ref(i.pr), _ref(i.issue), _title(i), _effort(i),
                             _held_for(i)))


def _held_for(item: Item) -> str:
    """This repository's queue, or the reviewers who are at their cap (``worker/backlog/reviewer_cap.py``), unpinged."""
    busy = item.extra.get(HELD_BY)
    if not busy:
        return "a slot in this repository"
    return " or ".join(f"`{entry['login']}` ({len(entry['prs'])} awaiting their review)" for entry in busy)


def _working(working: list[Item], in_flight: int, now: float, rows: int) -> str:
    if not working and in_flight <= 0:
        return ""
    runs = [f"{in_flight} agent run{'' if in_flight == 1 else 's'} going."] if in_flight > 0 else []
    table = _table("", working, rows, ("Issue", "PR", "Title", "For"),
                   lambda i: (_ref(i.issue), _ref(i.pr), _title(i), waited(i.since, now)))
    return "\n\n".join(["### Working", *runs, *([table] if table else [])])


def _queued(items: list[Item], queued: list[Item], now: float, rows: int) -> str:
    ahead = positions(items)
    return _table("Queued", sorted(queued, key=lambda i: ahead[i.issue]), rows, ("Issue", "Title", "Ahead", "Waiting"),
                  lambda i: (_ref(i.issue), _title(i), "next" if ahead[i.issue] == 0 else f"{ahead[i.issue]} ahead",
                             waited(i.labeled_at or i.since, now)))


def _failed(failed: list[Item], now: float, rows: int) -> str:
    table = _table("Failed", failed, rows, ("Issue", "PR", "Title", "Reason", "Since"),
                   lambda i: (_ref(i.issue), _ref(i.pr), _title(i), _reason(i), waited(i.since, now)))
    return table and table + "\n\nTo try one again, comment `/mull retry` on its issue."


def _table(heading: str, items: list[Item], rows: int, columns: tuple[str, ...],
           cells: Callable[[Item], tuple[str, ...]]) -> str:
    """A Markdown table under ``### heading`` (none when empty), ``rows`` long, the rest counted below it."""
    if not items:
        return ""
    lines = [f"### {heading}", ""] if heading else []
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cells(item)) + " |" for item in items[:rows]]
    if len(items) > rows:
        lines += ["", f"… and {len(items) - rows} more"]
    return "\n".join(lines)


def _footer(next_digest: datetime | None, tz: str, now: float) -> str:
    lines = ["---"]
    if next_digest is not None:
        lines += [f"Next digest: {local_time(next_digest, tz, now)}.", ""]
    lines += ["<sub>Mull keeps this issue up to date by editing it in place; edits made by hand are replaced."
              "</sub>", MARKER]
    return "\n".join(lines)


def _ref(number: int | None) -> str:
    return f"#{number}" if number is not None else "—"


def _title(item: Item) -> str:
    return inline(item.title, TITLE_CHARS) or "—"


def _reason(item: Item) -> str:
    return inline(item.reason, REASON_CHARS) or "—"


def _effort(item: Item) -> str:
    return f"{item.effort}/5" if item.effort is not None else "—"


def _person(login: str, html_base: str) -> str:
    """``@login`` that reads as one, links to the profile, and notifies no one."""
    shown = inline("@" + login, 60)
    if not _LOGIN.match(login):
        return shown.replace("[", "\\[").replace("]", "\\]")
    host = html_base.rsplit("/", 2)[0] if html_base.count("/") >= 4 else "https://github.com"
    return f"[{shown}]({host}/{login})"


def _oldest(item: Item) -> tuple[float, int]:
    return (item.since, item.issue)


def _wake_order(item: Item) -> tuple[float, int]:
    return (item.wake_at if item.wake_at is not None else float("inf"), item.issue)


def _wakes(item: Item, tz: str, now: float) -> str:
    at = local_time(item.wake_at, tz, now) if item.wake_at is not None else ""
    until = f"#{item.until_issue} closes" if item.until_issue is not None else ""
    if at and until:
        return f"{at}, or when {until}"
    return at or (f"until {until}" if until else "—")
