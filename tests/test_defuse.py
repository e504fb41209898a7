"""Agent text is defused wherever it goes: it may say anything, but it may not ping, close, hide or fetch."""

from __future__ import annotations

import pytest

from worker.agent.base import AgentResult
from worker.github.pull_requests import MULL_MARKERS, render_body
from worker.views.defuse import ZWJ, github_image, markdown, slack


@pytest.mark.parametrize("text", ["thanks @octocat", "cc @acme/reviewers", "(@octocat)", "\\@octocat"])
def test_mentions_of_users_and_teams_are_inert(text: str) -> None:
    out = markdown(text)
    assert "@" + ZWJ in out and out.replace(ZWJ, "") == text


@pytest.mark.parametrize("text", ["mail me at ann@example.com", "`@octocat` in code", "```\n@octocat\n```"])
def test_emails_and_code_are_left_alone(text: str) -> None:
    assert markdown(text) == text


@pytest.mark.parametrize("text", ["Closes #3", "fixes owner/repo#4", "resolves https://github.com/o/r/issues/5",
                                  "Fixed: #6", "RESOLVED #7"])
def test_closing_keywords_are_inert(text: str) -> None:
    out = markdown(text)
    assert out != text and out.replace(ZWJ, "") == text


@pytest.mark.parametrize("text", ["this closes the gap", "fixes a crash in #parser", "see #3", "`Closes #3`"])
def test_words_that_close_nothing_are_kept(text: str) -> None:
    assert markdown(text) == text


def test_html_comments_and_raw_html_are_escaped() -> None:
    out = markdown("visible <!-- hidden --> and <details><summary>x</summary></details>")
    assert "<" not in out and "--&gt;" in out and "hidden" in out


def test_foreign_images_become_links_and_githubs_own_stay_images() -> None:
    out = markdown("<img src=https://evil.example/x.png> ![x](https://evil.example/y.png) "
                   "![ok](https://user-images.githubusercontent.com/1/ok.png) ![rel](docs/a.png)")
    assert "<img" not in out and "![x]" not in out and "[x](https://evil.example/y.png)" in out
    assert "![ok](https://user-images.githubusercontent.com/1/ok.png)" in out and "![rel](docs/a.png)" in out


def test_reference_style_foreign_images_are_not_images() -> None:
    out = markdown("![x][r]\n\n[r]: https://evil.example/z.png")
    assert "![" not in out


@pytest.mark.parametrize(("url", "ok"), [("https://github.com/o/r/raw/main/a.png", True),
                                         ("https://avatars.githubusercontent.com/u/1", True),
                                         ("//evil.example/a.png", False), ("https://github.com.evil.example/a", False),
                                         ("data:image/png;base64,AAAA", False), ("a.png", True)])
def test_image_hosts(url: str, ok: bool) -> None:
    assert github_image(url) is ok


def test_slack_text_cannot_ping_the_channel() -> None:
    out = slack("<!channel> <!here> <@U123> & @here")
    assert "<" not in out and ">" not in out and "&amp;" in out and "@" + ZWJ + "here" in out


def test_the_pr_body_keeps_mulls_own_fixes_line_and_mention_only() -> None:
    result = AgentResult(summary="Done. Closes #3, cc @acme/admins <!-- mull:status {} --> "
                                 "![p](https://evil.example/p.png)",
                         not_done=("fixes owner/repo#4 @octocat",), budget_tripped=None,
                         error="resolves https://github.com/o/r/issues/5", steps=1, tokens=1)
    body = render_body(9, result, 1, "ann")
    assert body.startswith("Fixes #9\n") and "for @ann," in body
    assert "Closes #3" not in body and "fixes owner/repo#4" not in body and "resolves https" not in body
    assert "@acme" not in body and "@octocat" not in body and "<!-- mull:status" not in body
    assert "![p]" not in body and body.count("<!--") == len(MULL_MARKERS)  # Mull's own markers only
    assert all(body.count(marker) == 1 for marker in MULL_MARKERS)
