"""Links to session pages: only with Mull's public address, in the pull request body, the critique comment (also a
failed one); and the session settings' bad values refused at start with what to write instead."""

from __future__ import annotations

import pytest

from bot.settings import ConfigError, load_settings
from worker.agent.base import AgentResult
from worker.critique.budget import Selection
from worker.critique.comment import render_comment, render_failure
from worker.critique.schema import Critique
from worker.github.pull_requests import render_body
from worker.sessions.record import link, markdown_link

RUN = "implement-7-mull-issue-3-0123456789"
RESULT = AgentResult(summary="Fixed it.", not_done=(), budget_tripped=None, error=None, steps=3, tokens=90,
                     session=RUN)


def test_links_only_with_a_public_address() -> None:
    assert link(load_settings({}, env_file=None), RUN) is None
    assert markdown_link(load_settings({}, env_file=None), RUN) == ""
    settings = load_settings({"MULL_PUBLIC_URL": "https://mull.example.org/"}, env_file=None)
    assert link(settings, RUN) == f"https://mull.example.org/runs/{RUN}"
    assert link(settings, None) is None
    assert markdown_link(settings, RUN, "steps") == f"[steps](https://mull.example.org/runs/{RUN})"


def test_pull_request_body_and_critique_comments_carry_the_link() -> None:
    url = f"https://mull.example.org/runs/{RUN}"
    assert f"]({url})" in render_body(3, RESULT, 1, "maria", session_url=url)
    assert "/runs/" not in render_body(3, RESULT, 1, "maria", session_url=None)
    critique = Critique(summary="Looks fine.", effort=1, risks=[], security=[], findings=[], tests="none",
                        tests_note="", verdict="pass")
    assert f"]({url})" in render_comment(critique, "a" * 40, Selection((), (), 0), "", url)
    assert "/runs/" not in render_comment(critique, "a" * 40, Selection((), (), 0))
    assert f"]({url})" in render_failure("model unreachable", "a" * 40, url)


@pytest.mark.parametrize(("name", "value", "words"), [
    ("MULL_PUBLIC_URL", "mull.example.org", "has no scheme: write the whole URL, e.g. https://mull.example.org"),
    ("MULL_PUBLIC_URL", "ftp://mull.example.org", "only http:// and https:// work here"),
    ("MULL_SESSION_RETENTION_DAYS", "0", "is below its least value, 1"),
    ("MULL_SESSION_RETENTION_DAYS", "forever", "is not a whole number"),
])
def test_bad_session_settings_say_what_to_write(name: str, value: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({name: value}, env_file=None)
    assert str(caught.value).startswith(name) and words in str(caught.value)
