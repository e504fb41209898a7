"""What a critique is: the structured output the model must produce, validated before anyone sees it.

Validation messages are written for the model, because on the first failure they are sent back to it
verbatim and it gets one chance to correct itself.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

MAX_FINDINGS = 5
SUMMARY_LINES = 2
DROPPED_SEVERITIES = frozenset({"nit", "nitpick", "style"})  # style nits are never worth a comment

Severity = Literal["high", "medium", "low"]
TestsCoverage = Literal["covered", "partial", "none", "unknown"]
Verdict = Literal["pass", "fix"]


class Finding(BaseModel):
    """One problem worth a reviewer's attention, anchored to lines of the new version of a file."""

    model_config = ConfigDict(frozen=True)

    path: str = Field(min_length=1, description="File path as shown in the diff (the new path for renames).")
    start_line: int = Field(ge=1, description="First line of the problem, numbered in the NEW version of the file.")
    end_line: int = Field(ge=1, description="Last line (same as start_line for a single line).")
    severity: Severity = Field(description="high: bug, data loss or security hole; medium: likely problem; "
                                           "low: worth knowing. Style nits are not findings.")
    title: str = Field(min_length=1, max_length=200, description="The problem in a few words.")
    why: str = Field(min_length=1, max_length=3000, description="Why it matters: what goes wrong, and when.")
    suggestion: str = Field(min_length=1, max_length=3000, description="The fix you suggest, concretely.")

    @field_validator("path")
    @classmethod
    def _plain_path(cls, value: str) -> str:
        return value.strip().removeprefix("./")

    @field_validator("severity", mode="before")
    @classmethod
    def _lower_severity(cls, value: Any) -> Any:
        return _lower(value)

    @model_validator(mode="before")
    @classmethod
    def _one_line_range(cls, data: Any) -> Any:
        """A model that names one line often leaves end_line out; that is not worth its only retry."""
        if isinstance(data, dict) and data.get("end_line") is None and "start_line" in data:
            return {**data, "end_line": data["start_line"]}
        return data

    @model_validator(mode="after")
    def _ordered(self) -> Finding:
        if self.end_line < self.start_line:
            raise ValueError(
                f"end_line ({self.end_line}) is before start_line ({self.start_line}); give the range in order, "
                "or the same number twice for one line"
            )
        return self


class Critique(BaseModel):
    """The critique of one pull request head commit. Call this once, when your review is complete."""

    model_config = ConfigDict(frozen=True)

    summary: str = Field(description=f"At most {SUMMARY_LINES} lines: what the change does and whether it is sound.")
    effort: int = Field(ge=1, le=5, description="Estimated human review effort: 1 trivial, 3 an hour's careful "
                                                "reading, 5 very hard to review.")
    risks: list[str] = Field(default_factory=list, max_length=10,
                             description="Risks of merging: behaviour changes, migrations, compatibility.")
    security: list[str] = Field(default_factory=list, max_length=10,
                                description="Security concerns; empty if none.")
    findings: list[Finding] = Field(
        default_factory=list,
        description=f"At most {MAX_FINDINGS} problems worth fixing, most important first; empty if none.",
    )
    tests: TestsCoverage = Field(description="Do tests cover the change? 'unknown' only if you could not tell.")
    tests_note: str = Field(default="", max_length=1000, description="One line on test coverage.")
    verdict: Verdict = Field(description="'fix' only when a finding is worth an automatic revision round before "
                                         "a human reviews; otherwise 'pass'.")
    # Not offered to the model: the long Markdown of a CLI critic that did not answer in JSON.
    details: SkipJsonSchema[str] = ""

    @field_validator("summary")
    @classmethod
    def _short_summary(cls, value: str) -> str:
        lines = [line.strip() for line in value.strip().splitlines() if line.strip()]
        if not lines:
            raise ValueError("summary is empty; say in one or two lines what the change does and whether it is sound")
        if len(lines) > SUMMARY_LINES:
            raise ValueError(
                f"summary has {len(lines)} lines but at most {SUMMARY_LINES} are allowed; shorten it and move "
                "details into findings, risks or tests_note"
            )
        return "\n".join(lines)

    @field_validator("risks", "security")
    @classmethod
    def _non_empty_items(cls, value: list[str]) -> list[str]:
        return [item.strip() for item in value if item.strip()]

    @field_validator("findings", mode="before")
    @classmethod
    def _drop_nits(cls, value: Any) -> Any:
        """A nit the model sends anyway is dropped, not refused: refusing would spend its only retry."""
        if not isinstance(value, list):
            return value
        return [item for item in value
                if not (isinstance(item, dict) and str(item.get("severity", "")).strip().lower() in DROPPED_SEVERITIES)]

    @field_validator("findings")
    @classmethod
    def _few_findings(cls, value: list[Finding]) -> list[Finding]:
        if len(value) > MAX_FINDINGS:
            raise ValueError(
                f"{len(value)} findings given but at most {MAX_FINDINGS} are allowed; keep the {MAX_FINDINGS} "
                "that matter most and drop the rest"
            )
        return value

    @field_validator("tests", "verdict", mode="before")
    @classmethod
    def _lower_choice(cls, value: Any) -> Any:
        return _lower(value)

    @field_validator("tests_note")
    @classmethod
    def _stripped(cls, value: str) -> str:
        return value.strip()


def _lower(value: Any) -> Any:
    """"High" and "Pass" are what the model meant; refusing them would spend its only retry."""
    return value.strip().lower() if isinstance(value, str) else value


def explain(error: ValidationError, limit: int = 3) -> str:
    """One line naming each bad field and what is wrong with it, e.g. for "critique failed: <reason>"."""
    problems = []
    for item in error.errors(include_url=False)[:limit]:
        where = ".".join(str(part) for part in item["loc"]) or "output"
        problems.append(f"{where}: {item['msg'].removeprefix('Value error, ')}")
    more = len(error.errors()) - limit
    return "; ".join(problems) + (f"; and {more} more" if more > 0 else "")
