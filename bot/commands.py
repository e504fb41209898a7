"""``/mull`` commands in comment bodies, found where GitHub shows them as prose.

A command is a line someone typed that begins with ``/mull``. Markdown then decides whether that line is
prose: text in fenced or indented code, inline code, HTML blocks and HTML comments is documentation, and a
line behind a ``>`` quotes someone else's command, so none of those run. One command counts per comment,
so an edit or a long comment never fires a surprising batch of actions. Parsing is pure: the worker checks
permissions (the verb table says whose) and acts.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from bot.snooze_time import SnoozeError, parse_snooze

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.token import Token

NONE, TIME, TEXT, IGNORED = "none", "time", "text", "ignored"  # what a verb does with the rest of its line
COMMANDERS = frozenset({"admin", "maintain", "write", "triage"})  # GitHub roles with write or triage access


@dataclass(frozen=True)
class Verb:
    """One row of the verb table. The parser, ``/mull help`` and the worker's dispatcher all read this table,
    so a verb cannot be known to one and missing from another."""

    name: str
    args: str  # NONE, TIME, TEXT or IGNORED: what the rest of the line means, so errors can say it
    example: str  # a correct use, shown in the help and in error replies
    summary: str  # the help line
    handler: str  # the function of worker.webhooks.comment_commands that acts on it
    roles: frozenset[str] = COMMANDERS  # who may use it (the sender's role on the repository)


VERBS: dict[str, Verb] = {v.name: v for v in (
    Verb("snooze", TIME, "/mull snooze 3d",
         "Put this issue or pull request aside: `30m`, `4h`, `3d`, `2w`, `tomorrow`, `monday`, `next week`, "
         "`2026-12-01`, `2026-12-01T15:00` or `until #123`. Default 1 day, at most 90 days.", "do_snooze"),
    Verb("unsnooze", NONE, "/mull unsnooze", "Wake it now.", "do_unsnooze"),
    Verb("retry", NONE, "/mull retry", "Run the agent again.", "do_retry"),
    Verb("stop", NONE, "/mull stop", "Stop the queued or running agent.", "do_stop"),
    Verb("queue", NONE, "/mull queue", "Show where this issue is in the queue.", "do_queue"),
    Verb("go", NONE, "/mull go", "Start the agent on this issue now.", "do_go"),
    Verb("revise", TEXT, "/mull revise keep the old API",
         "Revise the pull request, following the instructions on the same line if any.", "do_revise"),
    Verb("base", TEXT, "/mull base dev",
         "Start this issue's run from another branch, and aim its pull request at it (default: the repository's "
         "default branch).", "do_base"),
    Verb("critique", NONE, "/mull critique", "Critique the pull request again.", "do_critique"),
    Verb("help", IGNORED, "/mull help", "Show this list.", "do_help"),
)}


def help_text() -> str:
    """The reply to ``/mull help``: every verb of the table with its example and help line."""
    return "\n".join([
        "Mull commands, one per comment, at the start of a line:",
        "",
        "| Command | What it does |",
        "|---|---|",
        *(f"| `{v.example}` | {v.summary} |" for v in VERBS.values()),
    ])


def allowed(verb: str, role: str) -> bool:
    """Whether someone with ``role`` on the repository may use ``verb``; a verb Mull does not know is answered
    (with the help) only to those who may give commands at all."""
    known = VERBS.get(verb)
    return role in (known.roles if known is not None else COMMANDERS)


HELP_TEXT = help_text()

SNOOZE_EXAMPLE = "`3d`, `tomorrow`, `monday`, `2026-12-01` or `until #123`"

# Private-use characters mark the lines that begin with /mull before Markdown sees them; they survive into
# the rendered text only where the line is prose, and carry the line number with them.
_OPEN, _CLOSE = "\ue000", "\ue001"
_TYPED = re.compile(r"[ \t]*/mull", re.IGNORECASE)
_MARKED = re.compile(f"/mull{_OPEN}(\\d+){_CLOSE}", re.IGNORECASE)
_MARK = re.compile(f"{_OPEN}\\d*{_CLOSE}")
_PROSE_BLOCKS = frozenset({"paragraph_open", "heading_open"})  # not table cells: a table documents commands
_EMOJI_MARKS = frozenset("\ufe0e\ufe0f\u20e3")  # variation selectors and the keycap that end emoji
_SHOWN = 40  # characters of someone's text quoted back in a reply


@dataclass(frozen=True)
class Command:
    """A command line as typed, before anyone checks that it makes sense."""

    verb: str  # lower case; may be a verb Mull does not know
    args: str  # the rest of the line, whitespace collapsed, trailing punctuation and emoji dropped
    line: int  # 1-based line of the comment body


@dataclass(frozen=True)
class ParseResult:
    """The comment's command and whether it can run: run ``command`` only when ``error`` is None."""

    command: Command | None
    error: str | None  # one-line reply with a correct example
    ignored: int  # further command lines in the comment, which never run

    @property
    def unknown(self) -> bool:
        """The verb is not Mull's: answer with ``error`` and ``HELP_TEXT``."""
        return self.command is not None and self.command.verb not in VERBS


NOTHING = ParseResult(None, None, 0)


def parse(body: str | None) -> ParseResult:
    """The first command of a comment body, with its error if it cannot run."""
    commands = _commands(body)
    if not commands:
        return NOTHING
    first = commands[0]
    return ParseResult(first, _error(first), len(commands) - 1)


def new_command(old: str | None, new: str | None) -> ParseResult:
    """The command an edit asks for: none when the edit kept the command that already counted.

    Fixing a typo elsewhere in a comment must not run its command again; adding or changing it must.
    """
    before, after = parse(old), parse(new)
    ignored = max(0, after.ignored - before.ignored)
    if after.command is None or (before.command is not None and _same(before.command, after.command)):
        return ParseResult(None, None, ignored)
    return after


def snooze_error(args: str, now: datetime, tz: str = "UTC") -> str | None:
    """The one-line reply for a ``/mull snooze`` time that cannot be used, or None when it can."""
    try:
        parse_snooze(args, now, tz)
    except SnoozeError as exc:
        return str(exc)
    return None


def _same(a: Command, b: Command) -> bool:
    return a.verb == b.verb and a.args.casefold() == b.args.casefold()


def _error(command: Command) -> str | None:
    verb = VERBS.get(command.verb)
    if verb is None:
        return f"`/mull {_shown(command.verb)}` is not a Mull command; `/mull help` lists them."
    if verb.args == NONE and command.args:
        return f"`/mull {verb.name}` takes no arguments: write just `{verb.example}` on its own line."
    return None


def _shown(text: str) -> str:
    """Someone's text, safe inside a code span of a reply."""
    text = "".join(c if c.isprintable() else "?" for c in text).replace("`", "'")
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


@functools.cache
def _markdown() -> MarkdownIt:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable("table")  # GitHub's tables; html is on in this preset


def _commands(body: str | None) -> list[Command]:
    """Every command line of the body, in order, valid or not."""
    if not body or "/mull" not in body.lower():
        return []
    # Normalise line endings and NUL as markdown-it does, so its line numbers are ours.
    text = re.sub(r"\r\n?", "\n", body).replace("\0", "\ufffd")
    text = text.replace(_OPEN, "\ufffd").replace(_CLOSE, "\ufffd")
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        typed = _TYPED.match(line)
        if typed:
            lines[number - 1] = f"{typed.group()}{_OPEN}{number}{_CLOSE}{line[typed.end():]}"
    tokens = _markdown().parse("\n".join(lines))
    found: list[Command] = []
    for before, token in zip(tokens, tokens[1:], strict=False):
        if token.type == "inline" and before.type in _PROSE_BLOCKS:
            found.extend(_in_prose(token.children or []))
    return found


def _in_prose(children: list[Token]) -> list[Command]:
    found: list[Command] = []
    for line in _rendered_lines(children):
        if not line or line[0].type != "text":
            continue  # starts with emphasis, code, a link or HTML: not typed as a command
        marked = _MARKED.match(line[0].content)
        if marked is None:
            continue
        rest = line[0].content[marked.end():] + "".join(_plain(child) for child in line[1:])
        command = _command(_MARK.sub("", rest), int(marked.group(1)))
        if command is not None:
            found.append(command)
    return found


def _rendered_lines(children: list[Token]) -> list[list[Token]]:
    lines: list[list[Token]] = [[]]
    for child in children:
        if child.type in ("softbreak", "hardbreak"):
            lines.append([])
        else:
            lines[-1].append(child)
    return lines


def _plain(token: Token) -> str:
    """What a reader sees of one inline token: markup and HTML (comments included) are dropped."""
    if token.type in ("text", "text_special", "code_inline", "image"):
        return token.content
    return ""


def _command(rest: str, line: int) -> Command | None:
    """``rest`` follows ``/mull`` on its line; ``/mullet`` and ``/mull-foo`` are not commands."""
    rest = _drop_trailing_junk(rest)
    if rest and not rest[0].isspace():
        return None
    words = rest.split()
    if not words:
        return Command("help", "", line)
    verb = _drop_trailing_junk(words[0]) or words[0]  # `/mull retry,` is retry; `/mull 🚀 x` is unknown
    return Command(verb.lower(), " ".join(words[1:]), line)


def mentions(body: str | None, slug: str) -> bool:
    """Whether ``@<slug>`` stands in the comment's own prose, where GitHub shows it as a mention.

    Code spans and blocks, HTML and HTML comments document a mention; a block quote repeats someone
    else's. None of those ask Mull for anything.
    """
    if not body or not slug or f"@{slug}".lower() not in body.lower():
        return False
    pattern = re.compile(rf"(?<![\w@/.`-])@{re.escape(slug)}(?![\w-])", re.IGNORECASE)
    quoted = 0
    tokens = _markdown().parse(body.replace("\0", "\ufffd"))
    for before, token in zip(tokens, tokens[1:], strict=False):
        quoted += {"blockquote_open": 1, "blockquote_close": -1}.get(before.type, 0)
        if token.type == "inline" and before.type in _PROSE_BLOCKS and not quoted:
            if pattern.search(_prose_text(token.children or [])):
                return True
    return False


def new_mention(old: str | None, new: str | None, slug: str) -> bool:
    """An edit asks Mull only when it adds the mention; fixing a typo in a comment that had one does not."""
    return mentions(new, slug) and not mentions(old, slug)


def _prose_text(children: list[Token]) -> str:
    """The inline text a reader sees as prose; code, HTML and line breaks become a space, ending any word."""
    return "".join(child.content if child.type in ("text", "text_special") else " " for child in children)


def _drop_trailing_junk(text: str) -> str:
    """Without the punctuation, emoji and spaces that end a sentence: ``/mull retry!`` and ``/mull go 🚀``."""
    end = len(text)
    while end and (unicodedata.category(text[end - 1])[0] in "PSZC" or text[end - 1] in _EMOJI_MARKS):
        end -= 1
    return text[:end]
