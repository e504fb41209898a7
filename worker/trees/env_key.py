"""What a prepared environment depends on, as one hash: the key of the warm-environment cache.

A repository's ``setup:`` output is reused by a later run (``worker/trees/env_cache.py``) only when everything
that decides it is unchanged:

- the setup commands, in order;
- the lock and manifest files: every tracked file a command names (``pip install -r ci/deps.txt``), and every
  tracked file, at any depth, with a well-known name (``DEPENDENCY_FILES``). They are hashed by their blob ids in
  the base commit, so nothing in the tree is read;
- the toolchain the sandbox lends (``toolchain``): the machine, its OS release, and the interpreters a setup
  most often builds with, so an upgraded ``/usr/bin/python3`` never meets a virtualenv made for the old one;
- whether commands run sandboxed, and which read-only paths the operator binds in.

What the key does not cover: the rest of the repository's files. A setup whose output depends on them (``pip
install .`` copies the project's code into the virtualenv; ``pip install -e .`` does not) gets the first run's
copy; a setup that changes or removes tracked files is never cached at all (``worker/jobs/branch_work.py``).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import platform
import shlex
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

VERSION = 1  # bump when what a cached environment holds, or how it is restored, changes

# Matched against a tracked file's name (its last path part), at any depth of the tree.
DEPENDENCY_FILES = (
    "requirements*.txt", "constraints*.txt", "pyproject.toml", "setup.py", "setup.cfg", "poetry.lock", "uv.lock",
    "Pipfile", "Pipfile.lock", "package.json", "package-lock.json", "npm-shrinkwrap.json", "yarn.lock",
    "pnpm-lock.yaml", "Cargo.toml", "Cargo.lock", "go.mod", "go.sum", "Gemfile", "Gemfile.lock",
    ".python-version", ".nvmrc", ".node-version", ".tool-versions",
)
_REQUIREMENTS_DIR = "requirements"  # requirements/base.txt, requirements/dev.txt …
_INTERPRETERS = ("/usr/bin/python3", "/usr/local/bin/python3", "/usr/bin/node", "/usr/local/bin/node",
                 "/usr/bin/ruby", "/usr/bin/go", "/usr/local/go/bin/go", "/usr/bin/cargo", "/usr/bin/gcc")


def dependency_files(commands: Sequence[str], tracked: Mapping[bytes, str]) -> dict[str, str]:
    """The tracked files (path → blob id) that decide what ``commands`` install: named by them, or well known."""
    named = set(_named(commands))
    chosen = {}
    for raw, oid in tracked.items():
        path = raw.decode("utf-8", errors="surrogateescape")
        parts = path.split("/")
        name = parts[-1]
        well_known = any(fnmatch.fnmatchcase(name, pattern) for pattern in DEPENDENCY_FILES)
        in_requirements = len(parts) > 1 and parts[-2] == _REQUIREMENTS_DIR and name.endswith(".txt")
        if well_known or in_requirements or path in named:
            chosen[path] = oid
    return chosen


def _named(commands: Sequence[str]) -> Iterable[str]:
    """Every word of the commands that could be a path: itself, and what follows an ``=`` (``--file=x``)."""
    for command in commands:
        try:
            words = shlex.split(command, comments=True)
        except ValueError:  # an unbalanced quote: the shell will complain; still take what looks like words
            words = command.split()
        for word in words:
            for candidate in (word, word.partition("=")[2]):
                while candidate.startswith("./"):
                    candidate = candidate[2:]
                if candidate:
                    yield candidate


def toolchain() -> dict[str, object]:
    """What of the host a prepared environment depends on: machine, OS release, the common interpreters."""
    try:
        release = Path("/etc/os-release").read_text(errors="replace")
    except OSError:
        release = ""
    found = {}
    for name in _INTERPRETERS:
        try:
            real = os.path.realpath(name)
            info = os.stat(real)
        except OSError:
            continue
        found[name] = [real, info.st_size, info.st_mtime_ns]
    return {"machine": platform.machine(), "os": release, "interpreters": found}


def env_key(commands: Sequence[str], tracked: Mapping[bytes, str], *, sandboxed: bool,
            ro_paths: Sequence[Path], host: Mapping[str, object]) -> str:
    """The cache key (hex) of the environment ``commands`` prepare in a tree whose tracked files are ``tracked``
    (path → blob id)."""
    material = {"version": VERSION, "commands": list(commands), "files": sorted(dependency_files(commands,
                                                                                              tracked).items()),
                "sandboxed": sandboxed, "ro_paths": [str(path) for path in ro_paths], "host": host}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()
