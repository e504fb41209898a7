"""Where tests run agent commands: under bubblewrap when this machine can, and unconfined everywhere."""

from __future__ import annotations

import pytest

from worker.agent.sandbox import SandboxSpec, SandboxUnavailable, check_bwrap


def bwrap_works() -> bool:
    try:
        check_bwrap()
    except SandboxUnavailable:
        return False
    return True


needs_bwrap = pytest.mark.skipif(not bwrap_works(), reason="bwrap unavailable here")
SPECS = [pytest.param(SandboxSpec(enabled=True), marks=needs_bwrap, id="bwrap"),
         pytest.param(SandboxSpec(enabled=False), id="unconfined")]
