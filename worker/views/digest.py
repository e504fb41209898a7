"""One reviewer's digest of one repository, and the "needs you" events that cannot wait for it.

The digest is what a reviewer reads instead of the dashboard: the pull requests waiting for them (in the
dashboard's order, so both read alike), the issues snoozed so often that someone should split or close them,
and the plans waiting for an answer. The same content comes as GitHub Markdown (posted where it mentions
the reviewer: that mention is the notification), as Slack mrkdwn and as JSON for the sinks. Only the
reviewer is mentioned: titles and reasons are user text and are defused like on the dashboard.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from worker.backlog.state import Item, ItemState
from worker.views import defuse
from worker.views.dashboard import REASON_CHARS, TITLE_CHARS, inline, local_time, review_order, waited

ASK_AFTER = 3  # snoozes after which the digest asks to split or close the issue
NEEDS_YOU = ("question", "budget", "failed")
_SPACES = re.compile(r"\s+")


def asks_to_split(item: Item) -> bool:
    """Whether the digest should ask about ``item`` (snoozed ``ASK_AFTER`` times or more)."""
    return item.snoozes >= ASK_AFTER


def digest_markdown(repo: str, reviewer: str, awaiting: list[Item], asks: list[Item], waiting: list[Item], *,
                    now: float, tz: str, dashboard_url: str | None) -> str:
    """The digest as GitHub Markdown, starting with ``@reviewer``; "" when all three lists are empty.

    ``repo`` is ``owner/name``; ``reviewer`` a login or ``org/team`` (a leading ``@`` is fine); ``awaiting``
    the pull requests waiting for this reviewer; ``asks`` the items snoozed often (see ``asks_to_split``);
    ``waiting`` the items waiting for an answer; ``now`` (epoch seconds) the only clock read; ``tz`` the
    repo's IANA time zone; ``dashboard_url`` the dashboard issue's address, linked at the end when given.
    """
    link = f"[The whole review queue]({dashboard_url})" if dashboard_url else ""
    style = _Style(ref=lambda number, _pull: f"#{number}", text=inline, bold="**", bullet="-")
    return _digest(repo, reviewer, awaiting, asks, waiting, now, tz, style, link)


def digest_slack(repo: str, reviewer: str, awaiting: list[Item], asks: list[Item], waiting: list[Item], *,
                 now: float, tz: str, dashboard_url: str | None, html_base: str) -> str:
    """``digest_markdown``'s content in Slack mrkdwn, with ``<url|#12>`` links; "" when all lists are empty.

    ``html_base`` is the repo's web address (``https://github.com/acme/widgets``)."""
    base = html_base.rstrip("/")
    link = f"<{defuse.slack_escape(dashboard_url)}|The whole review queue>" if dashboard_url else ""
    style = _Style(ref=lambda number, pull: f"<{_url(base, number, pull)}|#{number}>", text=_slack_text, bold="*",
                   bullet="•")
    return _digest(f"<{base}|{repo}>", reviewer, awaiting, asks, waiting, now, tz, style, link)


def digest_data(repo: str, reviewer: str, awaiting: list[Item], asks: list[Item], waiting: list[Item], *,
                now: float, tz: str, dashboard_url: str | None, html_base: str,
                window_start: float | None) -> dict[str, Any]:
    """The digest as JSON-serialisable data for the JSON sink (always a dict, even with nothing in it).

    ``window_start`` is when the previous digest went out (None for the first): the window is from it to
    ``now``. Titles and reasons are raw text here; ``age_seconds`` is None when the age is unknown.
    """
    base = html_base.rstrip("/")
    return {
        "kind": "digest", "repo": repo, "reviewer": reviewer.strip().lstrip("@"), "timezone": tz,
        "window": {"start": _iso(window_start), "end": _iso(now)}, "dashboard_url": dashboard_url,
        "items": [{"number": item.issue, "pr": item.pr, "title": item.title, "effort": item.effort,
                   "age_seconds": _age(item, now), "url": _item_url(base, item)}
                  for item in sorted(awaiting, key=review_order)],
        "asks": [{"number": item.issue, "pr": item.pr, "title": item.title, "snoozes": item.snoozes,
                  "url": _url(base, item.issue, False)} for item in sorted(asks, key=_by_issue)],
        "waiting": [{"number": item.issue, "pr": item.pr, "title": item.title, "reason": item.reason,
                     "age_seconds": _age(item, now), "url": _url(base, item.issue, False)}
                    for item in sorted(waiting, key=_oldest)],
    }


def needs_you(repo: str, item: Item, kind: str, html_base: str) -> tuple[str, dict[str, Any]]:
    """(Slack text, JSON data) of an event that goes out at once: ``kind`` is "question" (the plan asks
    something), "budget" (a run's budget ran out and the draft holds the work so far; or, for a queued
    issue, the installation's monthly budget is spent and the run waits) or "failed". ``item.reason``
    says what was asked or what went wrong; ``html_base`` is the repo's web address."""
    if kind not in NEEDS_YOU:
        raise ValueError(f"kind must be one of {NEEDS_YOU}, not {kind!r}")
    base = html_base.rstrip("/")
    issue = f"<{_url(base, item.issue, False)}|#{item.issue}>"
    pull = f" (<{_url(base, item.pr, True)}|#{item.pr}>)" if item.pr is not None else ""
    title = _slack_text(item.title, TITLE_CHARS)
    where = f"{issue}{pull}{': ' + title if title else ''} in <{base}|{repo}>"
    head, ask = {
        "question": (f"❓ Mull has a question about {where}.",
                     "Answer it in a comment on the issue, or comment `/mull go` to go ahead with the plan."),
        "budget": (f"⏳ Mull ran out of budget on {where}.",
                   "The draft holds the work so far: comment `/mull revise …` on it to go on, or `/mull retry` "
                   "on the issue to start over.") if item.state is not ItemState.QUEUED else (
                   f"⏳ Mull's run on {where} waits: the installation's monthly budget is spent.",
                   "It starts next month, or as soon as Mull's operator raises the budget."),
        "failed": (f"❌ Mull could not finish {where}.", "Comment `/mull retry` on the issue to try again."),
    }[kind]
    reason = _slack_text(item.reason, REASON_CHARS)
    by = f" (labeled by {_slack_text(item.labeled_by, 60)})" if item.labeled_by else ""
    text = "\n".join([head, *([f"> {reason}"] if reason else []), ask + by])
    data = {"kind": "needs_you", "event": kind, "repo": repo, "number": item.issue, "pr": item.pr,
            "title": item.title, "reason": item.reason, "state": str(item.state), "labeled_by": item.labeled_by,
            "url": _item_url(base, item)}
    return text, data


@dataclass(frozen=True)
class _Style:
    """How one text form writes a reference (number, is a pull request), user text (text, limit), bold, a bullet."""

    ref: Callable[[int, bool], str]
    text: Callable[[str, int], str]
    bold: str
    bullet: str


def _digest(repo: str, reviewer: str, awaiting: list[Item], asks: list[Item], waiting: list[Item], now: float,
            tz: str, style: _Style, link: str) -> str:
    """Both text forms of the digest; ``repo`` is written as given."""
    if not (awaiting or asks or waiting):
        return ""
    ref, text, bold, bullet = style.ref, style.text, style.bold, style.bullet
    parts = [f"@{reviewer.strip().lstrip('@')}, your Mull review digest for {repo} "
             f"({local_time(now, tz, now)})."]
    if awaiting:
        count = len(awaiting)
        heading = f"{count} pull request{'s wait' if count != 1 else ' waits'} for your review"
        rows = []
        for item in sorted(awaiting, key=review_order):
            head = f"{ref(item.pr, True)} (issue {ref(item.issue, False)})" if item.pr is not None \
                else ref(item.issue, False)
            effort = f"effort {item.effort}/5, " if item.effort is not None else ""
            rows.append(f"{bullet} {head}: {_or_untitled(text(item.title, TITLE_CHARS))} — {effort}"
                        f"waiting {waited(item.since, now)}")
        parts.append(f"{bold}{heading}{bold}, smallest first:\n\n" + "\n".join(rows))
    if asks:
        rows = [f"{bullet} {ref(item.issue, False)}{_paren(text(item.title, TITLE_CHARS))} has been snoozed "
                f"{item.snoozes} times. Split it into smaller issues, or close it?"
                for item in sorted(asks, key=_by_issue)]
        parts.append(f"{bold}Snoozed again and again{bold}\n\n" + "\n".join(rows))
    if waiting:
        rows = [f"{bullet} {ref(item.issue, False)}: {_or_untitled(text(item.title, TITLE_CHARS))} — "
                f"{text(item.reason, REASON_CHARS) or 'waiting for an answer'} (for {waited(item.since, now)})"
                for item in sorted(waiting, key=_oldest)]
        parts.append(f"{bold}Waiting for an answer{bold}\n\n" + "\n".join(rows))
    if link:
        parts.append(link)
    return "\n\n".join(parts) + "\n"


def _slack_text(value: str, limit: int) -> str:
    """User text as one line of Slack mrkdwn: ``&``, ``<``, ``>`` escaped (no link, no ``<!here>``), ``@`` defused."""
    value = _SPACES.sub(" ", value).strip()
    if len(value) > limit:
        value = value[: limit - 1].rstrip() + "…"
    return defuse.slack(value)




def _or_untitled(title: str) -> str:
    return title or "(no title)"


def _paren(title: str) -> str:
    return f" ({title})" if title else ""


def _url(base: str, number: int, pull: bool) -> str:
    return f"{base}/{'pull' if pull else 'issues'}/{number}"


def _item_url(base: str, item: Item) -> str:
    return _url(base, item.pr, True) if item.pr is not None else _url(base, item.issue, False)


def _age(item: Item, now: float) -> int | None:
    return int(max(0.0, now - item.since)) if item.since > 0 else None


def _iso(when: float | None) -> str | None:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when is not None else None


def _oldest(item: Item) -> tuple[float, int]:
    return (item.since, item.issue)


def _by_issue(item: Item) -> int:
    return item.issue
