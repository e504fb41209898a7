"""Pytest fixtures for the doubles; a conftest (or a test module) imports the ones it wants.

Key generation is the slow part, so the App keypair is made once per session.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .github import GitHubDouble, generate_app_keypair
from .model_server import ScriptedModel

APP_ID = 4242
INSTALLATION_ID = 777
OWNER = "acme"
REPO = "acme/widgets"
SEED_FILES = {"README.md": "# widgets\n", "src/widgets.py": "def answer():\n    return 41\n"}


@pytest.fixture(scope="session")
def app_keypair() -> tuple[str, str]:
    """(private PEM, public PEM) of the test GitHub App."""
    return generate_app_keypair()


@pytest.fixture
def github_double(tmp_path, app_keypair) -> Iterator[GitHubDouble]:
    """A running GitHub double with ``acme/widgets`` installed (installation 777) and nothing else."""
    with GitHubDouble(tmp_path / "github", app_keypair[1], app_id=APP_ID) as double:
        double.create_repo(REPO, SEED_FILES)
        double.add_installation(INSTALLATION_ID, OWNER)
        yield double


@pytest.fixture
def scripted_model() -> Iterator[ScriptedModel]:
    with ScriptedModel() as model:
        yield model
