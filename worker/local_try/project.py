"""``mull try`` prepares and checks the tree as a worker does, so that what it shows is what a pull request gets.

The repository's ``.github/mull.yml`` is read at the commit the run starts from, over the operator's defaults
(``MULL_*``) with the same checks as on GitHub (a repository may narrow the network, never widen it). Its
``setup:`` runs in the sandbox before the agent, behind an egress proxy that lets through what ``network.allow``
and the operator allow; its ``test:`` runs on Mull's commit afterwards. Setup's output is never part of the patch.
"""

from __future__ import annotations

from pathlib import Path

from bot.settings import ConfigError, MullSettings
from worker.agent.project_commands import ProjectRun, SetupFailed, run_tests, setup_through_proxy
from worker.jobs.branch_work import sandbox_for
from worker.repo_config import RepoConfig
from worker.repo_config.errors import ConfigFileError
from worker.repo_config.load import PATH
from worker.repo_config.parse import MAX_BYTES, build, parse_config
from worker.repo_config.schema import Defaults
from worker.trees.git_process import git
from worker.trees.repo_cache import RunTree
from worker.trees.setup_marks import SetupMarks
from worker.trees.tree_commit import mark_setup


async def config_at(mirror: Path, ref: str, name: str, settings: MullSettings) -> RepoConfig:
    """The repository's settings at ``ref``; ConfigError (exit 2) naming the file and every problem in it."""
    defaults = Defaults.from_settings(settings)
    text = await git("show", "--no-textconv", f"{ref}:{PATH}", git_dir=mirror, check=False)
    source = f"{name}:{PATH}"
    if len(text.encode()) > MAX_BYTES:
        raise ConfigError(f"{source} is over {MAX_BYTES // 1024} KB: Mull reads no config file that large")
    try:
        return parse_config(text, source, defaults) if text.strip() else build(defaults, source=source)
    except ConfigFileError as exc:
        raise ConfigError(f"{exc} (mull try reads it from the commit it starts from: fix it there)") from None


async def prepare(config: RepoConfig, run: RunTree, settings: MullSettings
                  ) -> tuple[SetupMarks | None, tuple[tuple[str, int], ...]]:
    """``setup:`` in the run's tree: what it left there and what its egress proxy refused. SetupFailed when it
    fails; nothing to do without ``setup:``."""
    if not config.setup:
        return None, ()
    outcome = await setup_through_proxy(config, run.tree, sandbox_for(settings, run), settings.sandbox_allowed)
    if not outcome.ok:
        raise SetupFailed(outcome, config.setup_timeout)
    return await mark_setup(run), outcome.blocked


async def check(config: RepoConfig, run: RunTree, settings: MullSettings) -> ProjectRun | None:
    """``test:`` on the committed tree (None without one), in the sandbox like every command of the run."""
    if not config.test:
        return None
    return await run_tests(config.test, run.tree, sandbox_for(settings, run), config.test_timeout)
