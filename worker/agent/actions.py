"""A running log of what the builtin agent did, so a run cut short can still say what it changed.

A run stopped by a budget or a model failure produces no summary of its own, yet its changes are
committed; the pull request body is then built from this log.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_MAX_COMMANDS_SHOWN = 20
_MAX_COMMAND_CHARS = 200


@dataclass
class ActionLog:
    """Files created/edited and commands run, in order, without duplicates for files."""

    created: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)

    def wrote(self, path: str, created: bool) -> None:
        if path in self.created or path in self.changed:
            return
        (self.created if created else self.changed).append(path)

    def edited(self, path: str) -> None:
        self.wrote(path, created=False)

    def ran(self, command: str, outcome: str) -> None:
        shown = command if len(command) <= _MAX_COMMAND_CHARS else command[:_MAX_COMMAND_CHARS] + "…"
        self.commands.append(f"`{shown}` ({outcome})")

    def summary(self, reason: str) -> str:
        """Markdown for a run that ended without the model's own summary; ``reason`` says why."""
        lines = [f"The agent stopped before finishing ({reason})."]
        if not (self.created or self.changed or self.commands):
            lines.append("It made no changes through its tools.")
            return "\n".join(lines)
        if self.created or self.changed:
            lines.append("")
            lines.append("Files it wrote:")
            lines += [f"- `{path}` (new)" for path in self.created]
            lines += [f"- `{path}`" for path in self.changed]
        if self.commands:
            lines.append("")
            lines.append("Commands it ran:")
            lines += [f"- {command}" for command in self.commands[-_MAX_COMMANDS_SHOWN:]]
            if len(self.commands) > _MAX_COMMANDS_SHOWN:
                lines.append(f"- … and {len(self.commands) - _MAX_COMMANDS_SHOWN} earlier commands")
        return "\n".join(lines)
