"""Which deliveries are worth storing, decided cheaply.

The receiver must answer GitHub within 10 s and keep up with bursts, so it looks at the event header and
at the raw bytes first and parses JSON only for the few events whose decision needs a field. The worker
decides again, fully, on what was stored: this filter may keep too much, never too little.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import orjson

# Events the worker acts on. Anything else is acknowledged and dropped.
PARSED_EVENTS = frozenset({"issues"})
COMMAND_EVENTS = frozenset({"issue_comment", "pull_request_review_comment", "pull_request_review"})
BRANCH_EVENTS = frozenset({"pull_request", "check_suite", "check_run", "push"})
ALWAYS_EVENTS = frozenset({"installation", "installation_repositories"})
ISSUE_ACTIONS = frozenset({"labeled", "unlabeled", "closed", "reopened"})

_COMMAND = re.compile(rb"/mull\b", re.IGNORECASE)
_MULL = re.compile(rb"mull")  # a literal pattern: re finds it faster than ``in`` does in JSON text
_WAITING = b'"mull:waiting"'  # the label Mull puts on an issue whose plan asked its author a question
_SNOOZED = b'"mull:snoozed"'  # any comment on a snoozed issue or PR wakes it
# A Mull branch or Mull's config file is named in the payload; JSON puts no escapes in these ASCII names.
_MULL_BRANCH = re.compile(rb'refs/heads/mull/|"mull/issue-|\.github/mull\.yml')
_ANY_MENTION = re.compile(rb"@[a-z0-9]")  # before the bot's login is known, any mention might be Mull's
_PR_CLOSED = re.compile(rb'^\s*\{\s*"action"\s*:\s*"closed"')
# GitHub writes "action" first; when it is there, the issue action is read without parsing the body.
_LEADING_ACTION = re.compile(rb'^\s*\{\s*"action"\s*:\s*"([a-z_]+)"')


@dataclass(frozen=True)
class Verdict:
    store: bool
    reason: str


class MalformedPayload(ValueError):
    """The body is not the JSON object GitHub sends."""


def _looks_like_object(body: bytes) -> bool:
    head = body.lstrip()[:1]
    tail = body.rstrip()[-1:]
    return head == b"{" and tail == b"}"


def decide(event: str, body: bytes, bot_login: str | None) -> Verdict:
    """Keep or drop one verified delivery. Raises MalformedPayload for bodies that cannot be GitHub's."""
    if event in PARSED_EVENTS:
        fast = _issues_by_bytes(body, bot_login)
        if fast is not None:
            return fast
        payload = parse(body)
        if bot_login and _sender(payload) == bot_login:
            return Verdict(False, "sent by mull itself")
        action = payload.get("action")
        if not isinstance(action, str):  # a list or an object is unhashable: it must not reach the set
            raise MalformedPayload("issues payload without a string \"action\"")
        if action not in ISSUE_ACTIONS:
            return Verdict(False, f"issues.{action} is not acted on")
        return Verdict(True, f"issues.{action}")
    if not _looks_like_object(body):
        raise MalformedPayload("body is not a JSON object")
    if event in ALWAYS_EVENTS:
        return Verdict(True, event)
    if event in COMMAND_EVENTS:
        lowered = body.lower()
        names_mull = _names_mull_anywhere(lowered)
        if event == "pull_request_review" or names_mull and (
                _COMMAND.search(body) or _WAITING in body or _SNOOZED in body) or \
                _mentions_bot(lowered, bot_login, names_mull):
            # Reviews matter on Mull PRs only; the worker checks the branch. Comments need a command or a mention.
            if event == "pull_request_review" and not _names_mull_branch(body):
                return Verdict(False, "review on a pull request mull did not open")
            payload = parse(body)
            if bot_login and _sender(payload) == bot_login:
                return Verdict(False, "sent by mull itself")
            return Verdict(True, event)
        return Verdict(False, "no /mull command, no mention and no question waiting")
    if event in BRANCH_EVENTS:
        if _names_mull_branch(body) or (event == "pull_request" and _PR_CLOSED.search(body)):
            return Verdict(True, event)
        return Verdict(False, "not about a mull branch")
    return Verdict(False, f"event {event!r} is not acted on")


def _names_mull_anywhere(lowered: bytes) -> bool:
    """Whether "mull" appears in any case (``lowered`` is the body in lower case): a command, a waiting or
    snoozed label all contain it.

    Most comments are not for Mull; lowering the body and one literal search rule them out twice as fast as
    the case-insensitive command pattern alone would, and that pattern and two more searches are then skipped.
    """
    return _MULL.search(lowered) is not None


def _mentions_bot(lowered: bytes, bot_login: str | None, names_mull: bool) -> bool:
    """``@<slug>`` appears somewhere (``lowered``: the body in lower case); the worker decides whether it is a
    mention in the comment's prose. A slug with "mull" in it needs no search of a body without "mull"; one
    literal search rules out most of the rest, and the pattern checks what is left."""
    if bot_login is None:
        return _ANY_MENTION.search(lowered) is not None
    literal, pattern = _mention_pattern(bot_login)
    if not names_mull and b"mull" in literal:
        return False
    return literal in lowered and pattern.search(lowered) is not None


@functools.cache
def _mention_pattern(bot_login: str) -> tuple[bytes, re.Pattern[bytes]]:
    literal = b"@" + bot_login.removesuffix("[bot]").lower().encode()
    return literal, re.compile(re.escape(literal) + rb"(?![a-z0-9_-])")


def _names_mull_branch(body: bytes) -> bool:
    """A Mull branch or config file is named; the plain substring rules out most pushes and checks cheaply."""
    return _MULL.search(body) is not None and _MULL_BRANCH.search(body) is not None


def _issues_by_bytes(body: bytes, bot_login: str | None) -> Verdict | None:
    """Decide an ``issues`` delivery from its bytes, or None when only a parse can tell.

    Every ``labeled`` is kept: a repository may name its own trigger label in ``.github/mull.yml``, which
    only the worker reads. Labels are rare next to comments and pushes, so this costs little.
    """
    leading = _LEADING_ACTION.match(body)
    if leading is None or not body.rstrip().endswith(b"}"):
        return None
    action = leading.group(1).decode()
    if action not in ISSUE_ACTIONS:
        return Verdict(False, f"issues.{action} is not acted on")
    if bot_login and orjson.dumps(bot_login) in body:
        return None  # maybe sent by mull itself: parse to look at the sender
    return Verdict(True, f"issues.{action}")


def parse(body: bytes) -> dict:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedPayload(f"body is not valid JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise MalformedPayload("body is JSON but not an object")
    return payload


def _sender(payload: dict) -> str | None:
    sender = payload.get("sender")
    return sender.get("login") if isinstance(sender, dict) else None
