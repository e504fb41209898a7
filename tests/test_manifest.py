"""app-manifest.yml stays a manifest GitHub accepts and stays in step with the events Mull's receiver keeps."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from bot import intake

MANIFEST_PATH = Path(__file__).parent.parent / "app-manifest.yml"

# Keys GitHub's manifest flow reads; anything else is a typo it would silently ignore.
MANIFEST_KEYS = {"name", "url", "hook_attributes", "redirect_url", "callback_urls", "setup_url", "description",
                 "public", "default_events", "default_permissions", "request_oauth_on_install",
                 "setup_on_update"}

# The App permission each webhook event needs before GitHub delivers it to an App (GitHub docs, "Webhook events
# and payloads": the "Availability"/permission line of each event). Several permissions mean any one suffices.
EVENT_PERMISSIONS: dict[str, set[str]] = {
    "issues": {"issues"},
    "issue_comment": {"issues", "pull_requests"},
    "pull_request": {"pull_requests"},
    "pull_request_review": {"pull_requests"},
    "pull_request_review_comment": {"pull_requests"},
    "pull_request_review_thread": {"pull_requests"},
    "check_suite": {"checks"},
    "check_run": {"checks"},
    "push": {"contents"},
    "create": {"contents"},
    "delete": {"contents"},
    "label": {"metadata"},
    "workflow_run": {"actions"},
    "workflow_job": {"actions"},
    "status": {"statuses"},
}

# Sent to every App whatever it subscribes to; GitHub refuses them in a manifest's default_events.
ALWAYS_SENT = {"installation", "installation_repositories", "installation_target", "github_app_authorization"}

# What Mull does with each permission (README, "Create the GitHub App"); the manifest must grant at least this.
REQUIRED_PERMISSIONS = {"metadata": "read", "contents": "write", "pull_requests": "write", "issues": "write",
                        "checks": "read", "actions": "read"}
ACCESS_LEVELS = {"read": 1, "write": 2}


@pytest.fixture(scope="module")
def manifest() -> dict:
    data = yaml.safe_load(MANIFEST_PATH.read_text())
    assert isinstance(data, dict), "app-manifest.yml must be a YAML mapping"
    return data


def receiver_events() -> set[str]:
    return set(intake.PARSED_EVENTS | intake.COMMAND_EVENTS | intake.BRANCH_EVENTS | intake.ALWAYS_EVENTS)


def test_only_keys_github_reads(manifest: dict) -> None:
    assert set(manifest) <= MANIFEST_KEYS, f"unknown manifest keys: {sorted(set(manifest) - MANIFEST_KEYS)}"
    for key in ("name", "url", "hook_attributes", "default_permissions", "default_events"):
        assert key in manifest, f"app-manifest.yml lacks {key}"


def test_name_fits_githubs_limit(manifest: dict) -> None:
    assert isinstance(manifest["name"], str) and 0 < len(manifest["name"]) <= 34  # GitHub App names: 34 chars


def test_private_app(manifest: dict) -> None:
    assert manifest["public"] is False


def test_webhook_points_at_the_receiver(manifest: dict) -> None:
    hook = manifest["hook_attributes"]
    assert hook["active"] is True
    url = urlparse(hook["url"])
    assert url.scheme == "https", "GitHub delivers to https webhook URLs"
    assert url.path == "/webhooks/github", "the receiver's route is POST /webhooks/github (bot/receiver.py)"


def test_urls_are_https(manifest: dict) -> None:
    for key in ("url", "redirect_url", "setup_url"):
        if key in manifest:
            assert urlparse(manifest[key]).scheme == "https", f"{key} must be an https URL"
    for url in manifest.get("callback_urls", []):
        assert urlparse(url).scheme == "https"
    assert len(manifest.get("callback_urls", [])) <= 10  # GitHub's limit


def test_permission_values_are_valid(manifest: dict) -> None:
    permissions = manifest["default_permissions"]
    assert isinstance(permissions, dict) and permissions
    for name, level in permissions.items():
        assert level in ACCESS_LEVELS, f"{name}: {level!r} is not read or write"


def test_grants_what_mull_does(manifest: dict) -> None:
    permissions = manifest["default_permissions"]
    for name, level in REQUIRED_PERMISSIONS.items():
        assert name in permissions, f"missing permission {name}"
        assert ACCESS_LEVELS.get(permissions[name], 0) >= ACCESS_LEVELS[level], f"{name} needs {level}"


def test_no_installation_events(manifest: dict) -> None:
    listed = set(manifest["default_events"])
    assert not listed & ALWAYS_SENT, f"GitHub refuses these in a manifest: {sorted(listed & ALWAYS_SENT)}"


def test_no_duplicate_events(manifest: dict) -> None:
    events = manifest["default_events"]
    assert len(events) == len(set(events))


def test_every_event_has_its_permission(manifest: dict) -> None:
    permissions = set(manifest["default_permissions"])
    for event in manifest["default_events"]:
        assert event in EVENT_PERMISSIONS, f"{event}: add the permission it needs to EVENT_PERMISSIONS"
        assert EVENT_PERMISSIONS[event] & permissions, (
            f"GitHub sends {event} only to Apps with {' or '.join(sorted(EVENT_PERMISSIONS[event]))}"
        )


def test_every_listed_event_is_kept_by_the_receiver(manifest: dict) -> None:
    kept = receiver_events()
    for event in manifest["default_events"]:
        assert event in kept, f"{event} is subscribed but bot/intake.py drops it: remove it or handle it"


def test_every_kept_event_is_subscribed(manifest: dict) -> None:
    wanted = receiver_events() - ALWAYS_SENT
    missing = wanted - set(manifest["default_events"])
    assert not missing, f"bot/intake.py acts on {sorted(missing)} but the App does not subscribe to them"


def test_readme_lists_the_same_events_and_permissions(manifest: dict) -> None:
    """README's manual steps and the manifest describe the same App."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Create the GitHub App", 1)[1].split("\n## ", 1)[0].lower()
    for event in manifest["default_events"]:
        assert event.replace("_", " ") in section, f"README's 'Create the GitHub App' does not name {event}"
    for name in manifest["default_permissions"]:
        assert name.replace("_", " ") in section, f"README's 'Create the GitHub App' does not name {name}"
