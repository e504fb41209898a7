"""The re-test of a held pull request Mull brought up to date with its base before release.

It is the repository's own ``setup:`` then ``test:`` on the updated tree, run exactly as after an agent run
(``worker/jobs/branch_work.py``): in the sandbox, setup behind the run's egress proxy, each under its budget.
A worker may be given another hook (``Services.retest``); without either there is nothing to re-run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from worker.agent.project_commands import run_tests, setup_through_proxy
from worker.agent.sandbox import SandboxSpec
from worker.jobs.services import Services
from worker.repo_config import RepoConfig

Retest = Callable[[Path], Awaitable[bool]]  # the tests on a tree: True when they passed


def retest_for(svc: Services, config: RepoConfig) -> Retest | None:
    """The worker's own hook, else the repository's ``test:`` (after its ``setup:``); None: no re-test."""
    if svc.retest is not None:
        return svc.retest
    test = config.test
    if not test:
        return None
    settings = svc.settings

    async def project_tests(tree: Path) -> bool:
        spec = SandboxSpec(enabled=settings.sandbox, ro_paths=tuple(settings.sandbox_ro_paths))
        if config.setup:
            setup = await setup_through_proxy(config, tree, spec, settings.sandbox_allowed)
            if not setup.ok:
                return False
        return (await run_tests(test, tree, spec, config.test_timeout)).ok

    return project_tests
