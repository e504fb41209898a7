"""The README stays true: every setting is in its configuration table, every CLI command documented."""

from __future__ import annotations

from pathlib import Path

from bot.settings import MullSettings
from worker.ops.cli import COMMANDS

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_setting_is_in_the_configuration_table() -> None:
    for name in MullSettings.model_fields:
        assert f"| `MULL_{name.upper()}` |" in README, f"MULL_{name.upper()} missing from README.md"


def test_every_command_is_documented() -> None:
    for command in COMMANDS:
        assert f"`mull {command}" in README


def test_quick_start_is_the_two_make_commands() -> None:
    quick = README.split("## Quick start", 1)[1].split("##", 1)[0]
    assert "make run" in quick and "make test" in quick


def test_repository_configuration_table_is_the_schema() -> None:
    from worker.repo_config import reference_table

    assert reference_table() in README
