"""The one `/mull` verb table: the parser, `/mull help`, the README and the worker's dispatcher all agree with it."""

from __future__ import annotations

import asyncio
import inspect
import re
from pathlib import Path

import pytest

from bot.commands import COMMANDERS, HELP_TEXT, IGNORED, NONE, TEXT, TIME, VERBS, Command, Verb, allowed, parse
from worker.webhooks import comment_commands
from worker.webhooks.comment_commands import HANDLERS

README = (Path(__file__).parent.parent / "README.md").read_text()
GITHUB_ROLES = {"admin", "maintain", "write", "triage", "read", "none"}


def test_every_verb_has_its_handler_and_no_handler_lacks_a_verb() -> None:
    assert set(HANDLERS) == set(VERBS)
    for name, verb in VERBS.items():
        handler = HANDLERS[name]
        assert handler is getattr(comment_commands, verb.handler) and handler.__name__ == verb.handler
        assert inspect.iscoroutinefunction(handler)
        assert list(inspect.signature(handler).parameters) == ["svc", "event", "target", "command"]


def test_every_verb_is_in_the_help_reply() -> None:
    outcome = asyncio.run(HANDLERS["help"]({}, None, None, Command("help", "", 1)))  # type: ignore[arg-type]
    assert outcome.ok and outcome.reply is not None
    rows = re.findall(r"^\| `(/mull [^`]*)` \| (.+) \|$", outcome.reply, flags=re.MULTILINE)
    assert rows == [(verb.example, verb.summary) for verb in VERBS.values()]
    assert outcome.reply.strip() == HELP_TEXT


def test_every_row_parses_as_its_table_says() -> None:
    for verb in VERBS.values():
        assert verb.args in (NONE, TIME, TEXT, IGNORED)
        assert verb.roles and verb.roles <= GITHUB_ROLES
        example = parse(verb.example)
        assert example.error is None and example.command is not None and example.command.verb == verb.name
        with_words = parse(f"/mull {verb.name} and more words")
        assert (with_words.error is None) == (verb.args != NONE), verb.name
        if verb.args == NONE:  # the error shows the correct example
            assert with_words.error is not None and f"`{verb.example}`" in with_words.error


def test_the_readme_lists_the_verbs_of_the_table() -> None:
    section = README.split("## Comment commands", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `/mull (\w+)", section, flags=re.MULTILINE)
    assert documented == list(VERBS)
    for verb in VERBS.values():
        assert f"| `{verb.example}`" in section


@pytest.mark.parametrize(("verb", "role", "expected"), [
    ("retry", "write", True), ("retry", "triage", True), ("stop", "admin", True), ("help", "maintain", True),
    ("retry", "read", False), ("help", "none", False), ("frobnicate", "write", True), ("frobnicate", "read", False),
])
def test_who_may_use_a_verb(verb: str, role: str, expected: bool) -> None:
    assert allowed(verb, role) is expected


def test_a_verb_whose_role_list_is_narrower_is_refused_to_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(VERBS, "retry", Verb("retry", NONE, "/mull retry", "Run the agent again.", "do_retry",
                                             roles=frozenset({"admin"})))
    assert allowed("retry", "admin") and not allowed("retry", "write")
    assert allowed("stop", "write") and "write" in COMMANDERS


def test_a_table_row_without_its_handler_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(VERBS, "frob", Verb("frob", NONE, "/mull frob", "Frob it.", "do_frob"))
    with pytest.raises(ImportError, match=r"worker/webhooks/comment_commands.py:do_frob acts on `/mull frob`"):
        comment_commands._handlers()

