"""The critique schema: what the model must produce, and validation messages it can act on."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from worker.critique.schema import Critique, Finding, explain


def finding(**overrides: Any) -> dict[str, Any]:
    return {"path": "src/app.py", "start_line": 3, "end_line": 4, "severity": "high", "title": "Off by one",
            "why": "The last item is skipped.", "suggestion": "Use range(len(items)).", **overrides}


def critique(**overrides: Any) -> dict[str, Any]:
    return {"summary": "Adds pagination.\nOne bug in the last page.", "effort": 2, "risks": ["changes API"],
            "security": [], "findings": [finding()], "tests": "partial", "tests_note": "no last-page test",
            "verdict": "fix", **overrides}


def errors(data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        Critique.model_validate(data)
    return explain(caught.value)


def test_a_valid_critique() -> None:
    parsed = Critique.model_validate(critique())
    assert parsed.findings[0] == Finding.model_validate(finding())
    assert parsed.summary == "Adds pagination.\nOne bug in the last page."
    assert parsed.details == ""


def test_more_than_five_findings_is_refused_with_a_message_the_model_can_act_on() -> None:
    message = errors(critique(findings=[finding(start_line=n, end_line=n) for n in range(1, 7)]))
    assert message == ("findings: 6 findings given but at most 5 are allowed; keep the 5 that matter most and "
                       "drop the rest")


@pytest.mark.parametrize("effort", [0, 6])
def test_effort_outside_one_to_five(effort: int) -> None:
    message = errors(critique(effort=effort))
    assert message.startswith("effort: Input should be ")


def test_three_line_summary_is_refused_but_blank_lines_do_not_count() -> None:
    assert "summary has 3 lines but at most 2" in errors(critique(summary="one\ntwo\nthree"))
    assert Critique.model_validate(critique(summary="\n  one \n\n two\n")).summary == "one\ntwo"
    assert "summary is empty" in errors(critique(summary="  \n"))


def test_nits_are_dropped_before_counting() -> None:
    nits = [finding(severity="nit"), finding(severity="Nit "), finding(severity="style")]
    kept = [finding(start_line=n, end_line=n) for n in range(5, 10)]
    parsed = Critique.model_validate(critique(findings=[*nits, *kept]))
    assert [f.start_line for f in parsed.findings] == [5, 6, 7, 8, 9]
    assert all(f.severity == "high" for f in parsed.findings)


def test_case_of_choices_is_forgiven_and_unknown_values_are_not() -> None:
    parsed = Critique.model_validate(critique(verdict="FIX", tests="Covered", findings=[finding(severity="Low")]))
    assert (parsed.verdict, parsed.tests, parsed.findings[0].severity) == ("fix", "covered", "low")
    assert "verdict: Input should be 'pass' or 'fix'" in errors(critique(verdict="maybe"))
    assert "findings.0.severity" in errors(critique(findings=[finding(severity="critical")]))


def test_reversed_line_range_is_refused_and_a_missing_end_means_one_line() -> None:
    assert "end_line (2) is before start_line (9)" in errors(critique(findings=[finding(start_line=9, end_line=2)]))
    single = {key: value for key, value in finding(start_line=7).items() if key != "end_line"}
    assert Finding.model_validate(single).end_line == 7


def test_explain_names_several_fields_on_one_line() -> None:
    message = errors(critique(effort=9, verdict="x", tests="x", summary="a\nb\nc\nd"))
    assert "\n" not in message and message.endswith("; and 1 more")


def test_details_are_not_offered_to_the_model() -> None:
    schema = Critique.model_json_schema()
    assert "details" not in schema["properties"]
    assert set(schema["required"]) == {"summary", "effort", "tests", "verdict"}
