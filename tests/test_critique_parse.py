"""Reading a critique from free text: JSON (bare, fenced, after log lines) or a Markdown review."""

from __future__ import annotations

import json

import pytest

from worker.critique.parse import DETAILS_LIMIT, UnusableOutput, from_text

GOOD = {"summary": "Fine.", "effort": 2, "findings": [], "tests": "covered", "verdict": "pass"}


def test_bare_json() -> None:
    assert from_text(json.dumps(GOOD)).effort == 2


def test_fenced_json_after_log_lines() -> None:
    text = f"loading model...\n{{progress: 3}}\nHere is my review:\n```json\n{json.dumps(GOOD, indent=2)}\n```\nbye\n"
    assert from_text(text).summary == "Fine."


def test_json_object_on_the_last_lines_after_logs() -> None:
    text = "warning: slow disk\n" + json.dumps(GOOD, indent=2) + "\n"
    assert from_text(text).tests == "covered"


def test_invalid_json_critique_names_the_problem() -> None:
    with pytest.raises(UnusableOutput, match="the JSON is not a valid critique: effort: Input should be"):
        from_text(json.dumps({**GOOD, "effort": 9}))


@pytest.mark.parametrize("text", ['{"summary": "cut off', "```json\n{oops}\n```", "  ", "[1, 2]"])
def test_garbage_and_empty_answers_are_unusable(text: str) -> None:
    with pytest.raises(UnusableOutput):
        from_text(text)


def test_markdown_review() -> None:
    text = ("# Review of #12\n\nAdds caching to the loader.\n\n- The cache never expires.\n- No tests.\n\n"
            "**Effort:** 4\n")
    critique = from_text(text)
    assert critique.summary == "Review of #12\nAdds caching to the loader."
    assert critique.details == "- The cache never expires.\n- No tests.\n\n**Effort:** 4"
    assert (critique.verdict, critique.effort, critique.tests, critique.findings) == ("pass", 4, "unknown", [])


@pytest.mark.parametrize("line", ["Verdict: fix", "**Verdict:** FIX", "- verdict: `fix`"])
def test_markdown_verdict_fix_line(line: str) -> None:
    critique = from_text(f"The change breaks the parser.\n\n{line}\n")
    assert critique.verdict == "fix" and critique.effort == 3
    assert critique.summary == "The change breaks the parser."


def test_markdown_details_are_capped_visibly() -> None:
    critique = from_text("Summary line.\nSecond.\n" + "x" * (DETAILS_LIMIT + 10))
    assert critique.details.endswith("[truncated: 10 more characters]")
