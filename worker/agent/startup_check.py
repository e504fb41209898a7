"""Is every CLI agent the worker may start installed, where its sandbox will see it? Asked at start-up.

A preset whose program is missing would otherwise fail at its first run, minutes after someone labeled an
issue, as "exit 127" in a status comment. The check looks the program up on the PATH agent commands get
(``sandbox.clean_env``) and, with the sandbox on, checks that the program, the directory it is found in and
the interpreter its ``#!`` line names all lie where a sandbox can see them (``bwrap.seen_by_sandbox``).
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

from bot.settings import MullSettings
from worker.agent.bwrap import seen_by_sandbox
from worker.agent.command import CommandAgent, TemplateError
from worker.agent.presets import PRESETS, resolve_preset
from worker.agent.sandbox import clean_env

_SHEBANG_BYTES = 256


def agent_problems(settings: MullSettings, *, command: bool = True, presets: bool = True,
                   critique: bool = True) -> list[str]:
    """One line per agent program that cannot start: MULL_AGENT_COMMAND (``command``), every preset repositories
    may pick (``presets``) and MULL_CRITIQUE_COMMAND (``critique``)."""
    problems = []
    unknown = [name for name in settings.enabled_presets if name not in PRESETS]
    if presets and unknown:
        problems.append(f"MULL_AGENT_PRESETS names an unknown preset '{unknown[0]}': use some of "
                        f"{', '.join(PRESETS)}, separated by commas")
    agent = (settings.agent_command or "").strip()
    if command and agent:
        try:
            CommandAgent(resolve_preset(agent))  # the template itself: placeholders, quotes
        except (TemplateError, ValueError) as exc:
            problems.append(str(exc))
        else:
            problems += _program_problems("MULL_AGENT_COMMAND", agent, settings)
    if presets:
        for name in settings.enabled_presets:
            if name in PRESETS and not (command and name == agent):
                problems += _program_problems("MULL_AGENT_PRESETS", name, settings)
    critic = (settings.critique_command or "").strip()
    if critique and critic:
        problems += _program_problems("MULL_CRITIQUE_COMMAND", critic, settings)
    return problems


def _program_problems(variable: str, value: str, settings: MullSettings) -> list[str]:
    preset = PRESETS.get(value)
    if preset is not None:
        program = preset.program
        where = f"{variable}={value}: the" if variable != "MULL_AGENT_PRESETS" else \
            f"MULL_AGENT_PRESETS lists '{value}', whose"
    else:
        try:
            words = shlex.split(value)
        except ValueError:
            return []  # the template check says what is wrong with its quotes
        program = words[0] if words and "{" not in words[0] else ""
        where = f"{variable}: its"  # a custom command may hold anything: name only its program
    if not program:
        return []
    path_env = clean_env()["PATH"]
    found = _which(program, path_env)
    if found is None:
        return [f"{where} program `{program}` is not installed (not found on PATH): {_install_fix(variable, value)}"]
    if not settings.sandbox:
        return []
    ro_paths = tuple(settings.sandbox_ro_paths)
    unseen = set()
    if not seen_by_sandbox(found.parent, ro_paths):  # the PATH entry a sandbox looks the program up in
        unseen.add(Path(os.path.realpath(found.parent)))
    unseen |= {_install_root(path) for path in (found, *_interpreters(found, path_env))
               if not seen_by_sandbox(path, ro_paths)}
    if not unseen:
        return []
    return [f"{where} program `{program}` is installed at {found}, which agent sandboxes do not see: add "
            f"{':'.join(sorted(map(str, unseen)))} to MULL_SANDBOX_RO_PATHS, or install it under /usr/local"]


def _which(program: str, path_env: str) -> Path | None:
    if "/" in program:
        path = Path(program)
        return path if path.is_file() and os.access(path, os.X_OK) else None
    found = shutil.which(program, path=path_env)
    return Path(found) if found else None


def _interpreters(program: Path, path_env: str) -> list[Path]:
    """What a script's ``#!`` line starts (``/usr/bin/env node`` names node, found on PATH): it must be seen too."""
    try:
        with program.open("rb") as handle:
            head = handle.read(_SHEBANG_BYTES)
    except OSError:
        return []
    if not head.startswith(b"#!"):
        return []
    words = head[2:].split(b"\n", 1)[0].decode(errors="replace").split()
    if not words:
        return []
    found = [Path(words[0])]
    if words[0].endswith("/env"):
        name = next((word for word in words[1:] if not word.startswith("-")), None)
        program_path = _which(name, path_env) if name else None
        if program_path is not None:
            found.append(program_path)
    return found


def _install_root(path: Path) -> Path:
    """What to show a sandbox for ``path`` to run: where its links lead, and for ``PREFIX/bin/x`` (a virtualenv,
    a pipx or npm prefix) the whole prefix, whose libraries it loads."""
    real = Path(os.path.realpath(path))
    return real.parent.parent if real.parent.name == "bin" else real.parent


def _install_fix(variable: str, value: str) -> str:
    preset = PRESETS.get(value)
    install = f"install it ({preset.install})" if preset and preset.install else "install it"
    if variable == "MULL_AGENT_PRESETS":
        return f"{install}, or take '{value}' out of MULL_AGENT_PRESETS"
    if variable == "MULL_AGENT_COMMAND":
        others = ", ".join(name for name in PRESETS if name != value)
        return f"{install}, or set MULL_AGENT_COMMAND to another preset ({others}), or unset it for the builtin agent"
    return f"{install}, or unset {variable} for the builtin critic"
