"""The settings that apply to one repository: the deployment's, then its org's and its own ``.github/mull.yml``."""

from __future__ import annotations

from typing import Any

from githubkit import GitHub

from bot.jobs import RepoRef
from bot.settings import MullSettings
from worker.github.app import GitHubApp
from worker.jobs.services import Services
from worker.repo_config import Defaults, RepoConfig, invalidate_for_push, load_config


async def config_for(svc: Services, gh: GitHub, repo: RepoRef) -> RepoConfig:
    """Raises ConfigFileError for a bad file: callers say so on the issue and do nothing else."""
    settings: MullSettings = svc.settings
    app: GitHubApp = svc.github
    # A repo-scoped token cannot read a private <owner>/.github; this client only connects on a cache miss.
    org_gh = app.installation(repo.installation_id)
    return await load_config(gh, svc.redis, repo.owner, repo.name, repo.repo_id, Defaults.from_settings(settings),
                             org_gh=org_gh)


def quiet_seconds(config: RepoConfig) -> float:
    return config.revision_quiet_minutes * 60


async def on_push(svc: Services, event: Any) -> str:
    """A push that changed a config file forgets the cached copy, so the next run reads the new one."""
    return "config invalidated" if await invalidate_for_push(svc.redis, event.payload) else "nothing to do"
