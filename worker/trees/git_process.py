"""Every git command Mull runs, run so that nothing an agent wrote can steer it.

The worker holds the App key, installation tokens and the model key, and an agent's tree (and the git
metadata an agent may have written into it) is hostile. Git reads configuration from many places and runs
programs named there: hooks, ``core.fsmonitor``, filter and textconv drivers, credential helpers,
``url.<x>.insteadOf`` rewrites. So every call here:

- names its repository explicitly (``--git-dir``), never discovering one from a working directory;
- reads no system or global configuration, has an empty ``HOME`` and never prompts;
- turns hooks, fsmonitor, attribute/ignore files outside the repository and credential helpers off on the
  command line, which wins over any configuration file.

Git authenticates with an ``http.extraHeader`` passed through ``GIT_CONFIG_*`` environment variables, so
the token is never written to a config file or a remote URL and never appears in a process list.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Mapping
from pathlib import Path

HARDENING = (
    "-c", "core.hooksPath=/dev/null",
    "-c", "core.fsmonitor=false",
    "-c", "core.attributesFile=/dev/null",
    "-c", "core.excludesFile=/dev/null",
    "-c", "credential.helper=",
    "-c", "protocol.ext.allow=never",
)


class GitError(RuntimeError):
    """A git command failed; the message carries git's own words (credentials never appear in them)."""


def _auth_env(token: str | None) -> dict[str, str]:
    if not token:
        return {}
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}"}


def hardened_env(token: str | None = None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment of a git process: nothing else is inherited from the worker's."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "", "LC_ALL": "C",
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_ATTR_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0", **_auth_env(token), **(extra or {})}


async def git_bytes(*args: str, git_dir: Path, work_tree: Path | None = None, cwd: Path | None = None,
                    token: str | None = None, env: Mapping[str, str] | None = None, check: bool = True,
                    timeout: float = 600, stdin: bytes | Path | None = None,
                    exit_codes: tuple[int, ...] = (0,)) -> bytes:
    """Run ``git --git-dir=<git_dir> [--work-tree=<work_tree>] <args>``; return stdout as bytes.

    ``stdin`` is data to feed, or a file whose contents to feed. With ``check``, an exit code outside
    ``exit_codes`` raises GitError; without it, any exit code is accepted.
    """
    location = [f"--git-dir={git_dir}"] + ([f"--work-tree={work_tree}"] if work_tree is not None else [])
    directory = cwd or work_tree or (git_dir if git_dir.is_dir() else git_dir.parent)
    feed = stdin if isinstance(stdin, bytes) else None
    source = open(stdin, "rb") if isinstance(stdin, Path) else None  # closed below, after git exits
    try:
        process = await asyncio.create_subprocess_exec(
            "git", *HARDENING, *location, *args, cwd=directory, env=hardened_env(token, env),
            stdin=source if source is not None else asyncio.subprocess.PIPE if feed is not None
            else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(feed), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise GitError(f"git {args[0]} timed out after {timeout:.0f} s") from None
        except asyncio.CancelledError:  # a cancelled job leaves no git running behind it
            process.kill()
            await asyncio.shield(process.wait())
            raise
    finally:
        if source is not None:
            source.close()
    if check and process.returncode not in exit_codes:
        raise GitError(f"git {args[0]} failed: {err.decode(errors='replace').strip()[-2000:]}")
    return out


async def git(*args: str, git_dir: Path, work_tree: Path | None = None, cwd: Path | None = None,
              token: str | None = None, env: Mapping[str, str] | None = None, check: bool = True,
              timeout: float = 600, stdin: bytes | Path | None = None) -> str:
    """Like ``git_bytes``, with stdout decoded (undecodable bytes replaced)."""
    out = await git_bytes(*args, git_dir=git_dir, work_tree=work_tree, cwd=cwd, token=token, env=env, check=check,
                          timeout=timeout, stdin=stdin)
    return out.decode(errors="replace")
