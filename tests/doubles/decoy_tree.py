"""A run's tree next to a directory of Mull's: what a link swapped into the tree would lead the file tools to."""

from __future__ import annotations

from pathlib import Path

SECRET = "MULL_WEBHOOK_SECRET=from-the-workers-dotenv"


def decoy_tree(tmp_path: Path) -> Path:
    """``tmp_path/tree`` with ``d/.env`` (a decoy), beside ``tmp_path/mull/.env`` holding ``SECRET``."""
    outside = tmp_path / "mull"
    outside.mkdir()
    (outside / ".env").write_text(SECRET + "\n")
    root = tmp_path / "tree"
    (root / "d").mkdir(parents=True)
    (root / "d" / ".env").write_text("decoy\n")
    return root
