"""A real browser for the tests that need one: Debian's headless Chromium, driven by playwright.

Skipped only when no Chromium binary exists (CI installs Debian's `chromium`); playwright's own browser download
is never used.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright


def chromium() -> str | None:
    """Debian's chromium (or one named by MULL_TEST_CHROMIUM)."""
    for candidate in (os.environ.get("MULL_TEST_CHROMIUM"), shutil.which("chromium"),
                      shutil.which("chromium-browser"), "/usr/bin/chromium"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium()
    if executable is None:
        pytest.skip("no chromium binary: `apt-get install chromium` (Debian's package; .ci/run installs it) "
                    "or set MULL_TEST_CHROMIUM to one")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable)
        yield launched
        launched.close()
