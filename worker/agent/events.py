"""What an agent run reports as it goes, for whoever watches it live (``mull try`` on a terminal).

The worker watches nobody: its runs get ``NO_EVENTS`` and report through the pull request instead. So an
agent calls these methods and never learns who, if anyone, is listening; nothing here may fail a run.
"""

from __future__ import annotations

from typing import Protocol


class AgentEvents(Protocol):
    def tool_called(self, name: str, detail: str) -> None:
        """The model called tool ``name``; ``detail`` is its main argument (a path, a pattern, a command)."""

    def file_written(self, path: str, created: bool) -> None:
        """A tool wrote ``path`` (relative to the tree): a new file when ``created``."""

    def command_finished(self, command: str, exit_code: int | None, seconds: float) -> None:
        """A command the agent ran has ended; ``exit_code`` is None when it was killed on its timeout."""

    def phase(self, text: str) -> None:
        """A step of the run as a whole, e.g. a CLI agent starting or exiting."""


class NoEvents:
    """Nobody is watching: every event is dropped."""

    def tool_called(self, name: str, detail: str) -> None:
        pass

    def file_written(self, path: str, created: bool) -> None:
        pass

    def command_finished(self, command: str, exit_code: int | None, seconds: float) -> None:
        pass

    def phase(self, text: str) -> None:
        pass


NO_EVENTS: AgentEvents = NoEvents()
