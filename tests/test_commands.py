"""`/mull` commands: found only where a person typed them as prose, one per comment, with useful errors."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from bot.commands import HELP_TEXT, NOTHING, VERBS, Command, ParseResult, new_command, parse, snooze_error


def cmd(verb: str, args: str = "", line: int = 1) -> Command:
    return Command(verb, args, line)


FENCE = "```"
TILDES = "~~~"

FOUND = [
    # where a command is
    pytest.param("/mull retry", cmd("retry"), id="alone"),
    pytest.param("/mull retry\n", cmd("retry"), id="trailing-newline"),
    pytest.param("Thanks!\n\n/mull retry", cmd("retry", line=3), id="after-a-paragraph"),
    pytest.param("Thanks!\n/mull retry", cmd("retry", line=2), id="second-line-of-a-paragraph"),
    pytest.param("Thanks!  \n/mull retry", cmd("retry", line=2), id="after-a-hard-break"),
    pytest.param("Thanks!\\\n/mull retry", cmd("retry", line=2), id="after-a-backslash-break"),
    pytest.param(" /mull retry", cmd("retry"), id="one-space"),
    pytest.param("   /mull retry", cmd("retry"), id="three-spaces"),
    pytest.param("\t/mull retry", None, id="tab-is-indented-code"),
    pytest.param("    /mull retry", None, id="four-spaces-is-indented-code"),
    pytest.param("text\n    /mull retry", cmd("retry", line=2), id="indented-continuation-is-prose"),
    pytest.param("/mull retry\r\n", cmd("retry"), id="crlf"),
    pytest.param("hi\r\n\r\n/mull snooze 3d\r\n", cmd("snooze", "3d", line=3), id="crlf-args"),
    pytest.param("hi\r/mull stop", cmd("stop", line=2), id="bare-cr"),
    pytest.param("/mull retry\n---", cmd("retry"), id="setext-heading-line"),
    pytest.param("# /mull retry", None, id="atx-heading"),
    pytest.param("- a\n  /mull retry", cmd("retry", line=2), id="list-item-continuation"),
    pytest.param("- a\n/mull retry", cmd("retry", line=2), id="lazy-list-continuation"),
    pytest.param("- /mull retry", None, id="list-marker-first"),
    pytest.param("1. /mull retry", None, id="ordered-list-marker-first"),
    pytest.param("<details>\n\n/mull retry\n\n</details>", cmd("retry", line=3), id="markdown-inside-details"),
    pytest.param("a | b\n--|--\n/mull retry | x", None, id="table-cell"),
    # where a command is not
    pytest.param("please /mull retry", None, id="mid-line"),
    pytest.param("I ran `/mull retry`", None, id="inline-code-mid-line"),
    pytest.param("`/mull retry`", None, id="inline-code-whole-line"),
    pytest.param("x `a\n/mull retry` y", None, id="inline-code-across-lines"),
    pytest.param("x `a\n/mull retry` y\n/mull stop", cmd("stop", line=3), id="after-inline-code-across-lines"),
    pytest.param(f"{FENCE}\n/mull retry\n{FENCE}", None, id="backtick-fence"),
    pytest.param(f"{FENCE}sh\n/mull retry\n{FENCE}", None, id="backtick-fence-with-info"),
    pytest.param(f"{TILDES}\n/mull retry\n{TILDES}", None, id="tilde-fence"),
    pytest.param(f"{FENCE}\n/mull retry", None, id="unclosed-fence"),
    pytest.param(f"{FENCE}\nx\n{FENCE}\n/mull retry", cmd("retry", line=4), id="after-a-fence"),
    pytest.param("Run:\n\n    /mull retry\n\nok", None, id="indented-code-block"),
    pytest.param("> /mull retry", None, id="quote"),
    pytest.param(">/mull retry", None, id="quote-no-space"),
    pytest.param("> > /mull retry", None, id="nested-quote"),
    pytest.param(">> /mull retry", None, id="nested-quote-tight"),
    pytest.param("> said:\n>\n> /mull retry\n\nno", None, id="quote-block"),
    pytest.param("> q\n/mull retry", cmd("retry", line=2), id="typed-after-a-quote-without-blank-line"),
    pytest.param("> q\n\n/mull retry", cmd("retry", line=3), id="typed-after-a-quote"),
    pytest.param("<!-- /mull retry -->", None, id="html-comment"),
    pytest.param("<!--\n/mull retry\n-->", None, id="multi-line-html-comment"),
    pytest.param("<!--\n\n/mull retry\n\n-->\n/mull stop", cmd("stop", line=6), id="comment-with-blank-lines"),
    pytest.param("hi <!--\n/mull retry\n--> there", None, id="inline-html-comment-across-lines"),
    pytest.param("<div>\n/mull retry\n</div>", None, id="html-block"),
    pytest.param("<details><summary>x</summary>\n/mull retry\n</details>", None, id="details-html-block"),
    pytest.param("\\/mull retry", None, id="escaped-slash"),
    pytest.param("&#47;mull retry", None, id="entity-slash"),
    pytest.param("*/mull retry*", None, id="emphasised"),
    pytest.param("**/mull retry**", None, id="bold"),
    pytest.param("[/mull retry](https://example.com)", None, id="link-text"),
    pytest.param("/mullet", None, id="mullet"),
    pytest.param("/mull-foo", None, id="hyphenated"),
    pytest.param("/mull_retry", None, id="underscore"),
    pytest.param("/mull/retry", None, id="slash"),
    pytest.param("/mull:retry", None, id="colon"),
    pytest.param("mull retry", None, id="no-slash"),
    pytest.param("//mull retry", None, id="double-slash"),
    pytest.param("", None, id="empty"),
    pytest.param("   \n\n", None, id="blank"),
    pytest.param("lgtm 👍", None, id="no-command"),
    # verbs and arguments
    pytest.param("/mull", cmd("help"), id="bare-is-help"),
    pytest.param("/mull   ", cmd("help"), id="bare-with-spaces"),
    pytest.param("/mull?", cmd("help"), id="bare-with-question-mark"),
    pytest.param("/MULL RETRY", cmd("retry"), id="upper-case"),
    pytest.param("/Mull Snooze 3d", cmd("snooze", "3d"), id="mixed-case"),
    pytest.param("/mull snooze 3D", cmd("snooze", "3D"), id="args-keep-case"),
    pytest.param("/mull retry.", cmd("retry"), id="full-stop"),
    pytest.param("/mull retry!!", cmd("retry"), id="exclamation"),
    pytest.param("/mull retry, please", cmd("retry", "please"), id="comma-then-words"),
    pytest.param("/mull snooze 3d.", cmd("snooze", "3d"), id="snooze-full-stop"),
    pytest.param("/mull snooze until #123.", cmd("snooze", "until #123"), id="snooze-until-full-stop"),
    pytest.param("/mull go 🚀", cmd("go"), id="emoji"),
    pytest.param("/mull go 👍🏽", cmd("go"), id="emoji-skin-tone"),
    pytest.param("/mull go ❤️", cmd("go"), id="emoji-variation-selector"),
    pytest.param("/mull 🚀", cmd("help"), id="only-emoji"),
    pytest.param("/mull snooze   next    week", cmd("snooze", "next week"), id="whitespace-collapsed"),
    pytest.param("/mull snooze *3d*", cmd("snooze", "3d"), id="emphasis-dropped-from-args"),
    pytest.param("/mull snooze `3d`", cmd("snooze", "3d"), id="code-span-args"),
    pytest.param("/mull snooze until \\#12", cmd("snooze", "until #12"), id="escaped-hash"),
    pytest.param("/mull retry <!-- it was flaky -->", cmd("retry"), id="trailing-html-comment"),
    pytest.param("/mull snooze\n3d", cmd("snooze"), id="args-end-at-the-line"),
    pytest.param("/mull revise use the new API", cmd("revise", "use the new API"), id="revise-text"),
    pytest.param("/mull frobnicate", cmd("frobnicate"), id="unknown-verb"),
    pytest.param("/mull retry now please", cmd("retry", "now please"), id="garbage-args"),
]


@pytest.mark.parametrize(("body", "expected"), FOUND)
def test_the_first_command_line(body: str, expected: Command | None) -> None:
    assert parse(body).command == expected


@pytest.mark.parametrize("body", [None, "", "no command here"])
def test_nothing(body: str | None) -> None:
    assert parse(body) == NOTHING
    assert not NOTHING.unknown


@pytest.mark.parametrize(("body", "ignored"), [
    ("/mull retry\n/mull stop", 1),
    ("/mull retry\n\n/mull stop\n\n/mull frob\n", 2),
    ("/mull snooze 3d\nplease /mull stop\n`/mull go`\n> /mull queue", 0),
    ("/mull retry\n/mullet\n/mull-x", 0),
    (f"{FENCE}\n/mull retry\n{FENCE}\n/mull stop\n/mull go", 1),
])
def test_only_the_first_command_counts(body: str, ignored: int) -> None:
    assert parse(body).ignored == ignored


def test_two_commands_the_first_wins() -> None:
    result = parse("/mull stop\n/mull retry")
    assert result == ParseResult(cmd("stop"), None, 1)


@pytest.mark.parametrize(("body", "error"), [
    ("/mull frob", "`/mull frob` is not a Mull command; `/mull help` lists them."),
    ("/mull retry now please", "`/mull retry` takes no arguments: write just `/mull retry` on its own line."),
    ("/mull stop it", "`/mull stop` takes no arguments: write just `/mull stop` on its own line."),
    ("/mull go 🚀 now", "`/mull go` takes no arguments: write just `/mull go` on its own line."),
    ("/mull fr\\`ob", "`/mull fr'ob` is not a Mull command; `/mull help` lists them."),
    ("/mull " + "x" * 100, f"`/mull {'x' * 39}…` is not a Mull command; `/mull help` lists them."),
])
def test_errors_are_one_line_with_a_correct_example(body: str, error: str) -> None:
    result = parse(body)
    assert result.error == error
    assert "\n" not in error


@pytest.mark.parametrize("body", ["/mull", "/mull help", "/mull help snooze", "/mull snooze", "/mull snooze 3d",
                                  "/mull snooze whenever", "/mull revise", "/mull revise add tests",
                                  *(f"/mull {name}" for name in VERBS)])
def test_valid_commands_have_no_error(body: str) -> None:
    result = parse(body)
    assert result.command is not None and result.error is None and not result.unknown


def test_unknown_verbs_are_flagged_for_the_help_text() -> None:
    result = parse("/mull frob")
    assert result.unknown and result.error is not None
    assert not parse("/mull retry now").unknown


def test_help_text_lists_every_verb_with_an_example() -> None:
    for verb in VERBS.values():
        assert f"| `{verb.example}` |" in HELP_TEXT
        assert parse(verb.example).error is None
    assert "`until #123`" in HELP_TEXT


@pytest.mark.parametrize(("old", "new", "expected"), [
    pytest.param("/mull retry", "/mull retry\n\nthanks", None, id="typo-elsewhere"),
    pytest.param("tanks\n/mull retry", "thanks\n\n/mull retry", None, id="line-moved"),
    pytest.param("/mull Retry", "/mull retry.", None, id="case-and-punctuation"),
    pytest.param("/mull", "/mull help", None, id="bare-is-help"),
    pytest.param("/mull snooze 3d", "/mull snooze 3D", None, id="args-case"),
    pytest.param("/mull frob\nx", "/mull frob\ny", None, id="same-bad-command-not-answered-twice"),
    pytest.param("thanks", "thanks\n/mull retry", cmd("retry", line=2), id="added"),
    pytest.param("/mull snooze 3d", "/mull snooze 4d", cmd("snooze", "4d"), id="args-changed"),
    pytest.param("/mull snooze 3d", "/mull unsnooze", cmd("unsnooze"), id="verb-changed"),
    pytest.param("/mull retyr", "/mull retry", cmd("retry"), id="typo-in-command-fixed"),
    pytest.param("`/mull retry`", "/mull retry", cmd("retry"), id="taken-out-of-code"),
    pytest.param("/mull retry", "`/mull retry`", None, id="put-in-code"),
    pytest.param("/mull retry", "", None, id="emptied"),
    pytest.param(None, "/mull stop", cmd("stop"), id="old-body-none"),
    pytest.param("/mull snooze 3d\n/mull retry", "/mull retry", cmd("retry"), id="ignored-one-now-counts"),
])
def test_edited_comments_run_only_a_new_command(old: str | None, new: str, expected: Command | None) -> None:
    assert new_command(old, new).command == expected


def test_an_edit_reports_newly_ignored_commands() -> None:
    assert new_command("/mull retry", "/mull retry\n/mull stop") == ParseResult(None, None, 1)
    assert new_command("/mull retry\n/mull stop", "/mull retry\n/mull stop.") == NOTHING


def test_an_edit_that_breaks_the_command_answers_with_the_error() -> None:
    result = new_command("/mull retry", "/mull retry now")
    assert result.command == cmd("retry", "now") and result.error is not None


def test_snooze_arguments_are_checked_by_the_helper() -> None:
    now = datetime(2026, 3, 28, 19, 0, tzinfo=UTC)
    assert snooze_error("3d", now) is None
    assert snooze_error("", now) is None
    assert snooze_error("whenever", now) == ("`/mull snooze` needs a time like `3d`, `tomorrow`, `monday`, "
                                             "`2026-12-01` or `until #123`, not `whenever`.")
    assert snooze_error("3d", now, "Mars/Olympus") is not None


def test_a_long_comment_is_parsed_quickly() -> None:
    filler = "Some prose with `code`, *emphasis* and a [link](https://example.com).\n" * 800
    body = filler + f"{FENCE}\n/mull stop\n{FENCE}\n/mull snooze 2w\n" + filler
    assert len(body) > 100_000
    started = time.perf_counter()
    result = parse(body)
    assert result.command == cmd("snooze", "2w", line=804)
    assert time.perf_counter() - started < 2.0


def test_many_commands_in_a_long_comment() -> None:
    result = parse("/mull retry\n" * 10_000)
    assert result.command == cmd("retry") and result.ignored == 9_999


@pytest.mark.parametrize("body", ["/mull retry\0", "\ue000/mull retry", "/mull\ue0005\ue001 retry", "/mull\ue001 x"])
def test_marker_characters_in_the_input_cannot_forge_a_line(body: str) -> None:
    result = parse(body)
    assert result.command is None or result.command.line == 1
