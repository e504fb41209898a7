"""A bad ``.github/mull.yml`` stops Mull in that repository, with one comment saying exactly what to fix.

Nothing falls back to defaults silently: a typo that turned a budget off, or a misspelled key that was
ignored, would otherwise be discovered only by surprise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

MAX_LISTED = 10


@dataclass(frozen=True)
class Problem:
    """One thing wrong in the file: where, which key, and what is allowed there."""

    message: str
    line: int | None = None  # 1-based
    key: str | None = None  # dotted path, e.g. budgets.steps

    def describe(self, where: str | None = None, markdown: bool = False) -> str:
        where = where or (f"line {self.line}" if self.line else "the file")
        key = f", `{self.key}`" if self.key else ""
        return f"{where}{key}: {_md(self.message) if markdown else self.message}"


class ConfigFileError(Exception):
    """The config file named by ``source`` (``owner/repo:.github/mull.yml``) cannot be used."""

    def __init__(self, source: str, problems: list[Problem] | tuple[Problem, ...], url: str | None = None,
                 label: str | None = None) -> None:
        self.source = source
        self.problems = tuple(sorted(problems, key=lambda p: (p.line or 0, p.key or "")))
        self.url = url  # the file on GitHub, for a link to the line
        self.label = label  # the file's `label`, when readable: tells a handler the trigger was meant for Mull
        super().__init__(f"{source}: " + "; ".join(p.describe() for p in self.problems))

    @property
    def line(self) -> int | None:
        return self.problems[0].line

    @property
    def key(self) -> str | None:
        return self.problems[0].key

    @property
    def message(self) -> str:
        return self.problems[0].message

    def render_markdown(self, label: str | None = None) -> str:
        """The one comment Mull posts on the triggering issue."""
        count = len(self.problems)
        head = (f"⚠️ **Mull** cannot start: its configuration file `{self.source}` has "
                f"{'a problem' if count == 1 else f'{count} problems'}. Nothing runs in this repository until it "
                "is fixed.")
        lines = [f"- {p.describe(self._link(p), markdown=True)}" for p in self.problems[:MAX_LISTED]]
        if count > MAX_LISTED:
            lines.append(f"- … and {count - MAX_LISTED} more")
        again = f"remove the `{label}` label and add it back" if label else "label the issue again"
        tail = (f"Fix the file on the default branch, then {again}. The keys, their types and defaults are listed "
                "in Mull's README under *Repository configuration*.")
        return "\n\n".join([head, "\n".join(lines), tail])

    def _link(self, problem: Problem) -> str | None:
        if not self.url or not problem.line:
            return None
        return f"[line {problem.line}]({self.url}#L{problem.line})"

    def to_json(self) -> dict[str, Any]:
        """The file-dependent part, cached per blob SHA (the source is added back when loaded)."""
        return {"problems": [asdict(p) for p in self.problems], "label": self.label}

    @classmethod
    def from_json(cls, source: str, data: dict[str, Any], url: str | None = None) -> ConfigFileError:
        return cls(source, [Problem(**p) for p in data["problems"]], url=url, label=data.get("label"))


def _md(text: str) -> str:
    """Mentions and HTML from the file stay inert in the comment."""
    return text.replace("@", "@\u200b").replace("<", "&lt;")
