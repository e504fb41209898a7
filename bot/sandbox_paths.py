"""Which host paths may be shown, read-only, to the agent's sandbox.

The sandbox shows nothing of the host by default. An operator can list more (MULL_SANDBOX_RO_PATHS, e.g.
where CLI agents are installed), and Mull binds its own interpreter to run the gateway bridge. Either way a
bound path must not expose what the agent must never read: Mull's working directory (its ``.env`` holds the
App key and webhook secret), its data dir (other runs' trees, Redis), the App private key file, or the
invoking user's HOME (ssh keys, cloud credentials). A path overlapping any of them in either direction is
refused; below HOME is fine (a Python under ``~/.pyenv``), HOME itself or above it is not.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Guarded:
    """What a path shown to the sandbox must stay clear of, as resolved absolute paths."""

    private: tuple[tuple[str, Path], ...]  # (what it is, where): never bound, never inside a bind
    homes: tuple[Path, ...]  # never bound, nor any ancestor; a subdirectory is allowed


def invoking_homes() -> tuple[Path, ...]:
    """The user's HOME as the environment says and as the password database says; they can differ."""
    homes = []
    if os.environ.get("HOME"):
        homes.append(Path(os.environ["HOME"]))
    try:
        homes.append(Path(pwd.getpwuid(os.getuid()).pw_dir))
    except KeyError:  # a uid without a passwd entry (some containers) has only $HOME
        pass
    return tuple(dict.fromkeys(home.resolve() for home in homes if home.is_absolute()))


def guarded(data_dir: Path, key_file: Path | None, cwd: Path, homes: Iterable[Path]) -> Guarded:
    private = [("Mull's working directory", cwd), ("MULL_DATA_DIR", data_dir)]
    if key_file is not None:
        private.append(("the App private key file (MULL_PRIVATE_KEY_PATH)", key_file))
    return Guarded(private=tuple((what, (cwd / path).resolve()) for what, path in private),
                   homes=tuple(home.resolve() for home in homes))


def refusal(path: Path, rules: Guarded) -> str | None:
    """Why ``path`` must not be shown to the sandbox, or None when it may be."""
    if not path.is_absolute():
        return f"{path} is relative: give an absolute path"
    if not path.exists():
        return f"{path} does not exist: create it or remove it from the list"
    real = path.resolve()
    for what, private in rules.private:
        if real == private or private.is_relative_to(real):
            return f"{path} contains {what} ({private}): list a directory that does not"
        if real.is_relative_to(private):
            return f"{path} lies inside {what} ({private}): list a directory outside it"
    for home in rules.homes:
        if home.is_relative_to(real):
            return (f"{path} is the invoking user's HOME ({home}) or contains it: list only the subdirectory the "
                    "agent needs, e.g. where a CLI agent is installed")
    return None
