"""Per-repository settings: ``.github/mull.yml`` in the repo, over defaults in the owner's ``.github`` repo.

``load_config`` gives a RepoConfig or raises ConfigFileError, whose ``render_markdown`` is the comment to
post; nothing falls back to defaults when a file is bad. A push touching the file calls
``invalidate_for_push``.
"""

from __future__ import annotations

from worker.repo_config.errors import ConfigFileError, Problem
from worker.repo_config.load import (
    PATH,
    invalidate,
    invalidate_for_push,
    invalidate_owner,
    load_config,
    touches_config,
    touches_org_defaults,
)
from worker.repo_config.parse import parse_config, parse_overrides
from worker.repo_config.schema import (
    Budgets,
    Defaults,
    Digest,
    Models,
    Network,
    RepoConfig,
    Sinks,
    reference_table,
)

__all__ = [
    "PATH", "Budgets", "ConfigFileError", "Defaults", "Digest", "Models", "Network", "Problem", "RepoConfig", "Sinks",
    "invalidate", "invalidate_for_push", "invalidate_owner", "load_config", "parse_config", "parse_overrides",
    "reference_table", "touches_config", "touches_org_defaults",
]
