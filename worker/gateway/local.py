"""The model gateway of one Mull process (a worker, or ``mull try``), built from its settings.

Its socket lives in a fresh private directory under the system's temporary directory rather than under
MULL_DATA_DIR: a unix socket path holds at most 107 bytes, and a data dir deep in a home or a test's
temporary tree would not fit. Transcripts go under MULL_DATA_DIR, where later views will read them.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bot.settings import MullSettings
from worker.gateway.server import ModelGateway


def transcripts_dir(settings: MullSettings) -> Path:
    return settings.data_dir.resolve() / "transcripts"


@contextlib.asynccontextmanager
async def local_gateway(settings: MullSettings, log: Any = None) -> AsyncIterator[ModelGateway]:
    """A running gateway to MULL_LLM_BASE_URL with MULL_LLM_API_KEY; every configured secret is scrubbed."""
    settings.require_model()
    assert settings.llm_base_url is not None  # require_model says so
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    home = Path(tempfile.mkdtemp(prefix="mull-gateway-"))  # 0700, owned by Mull's user
    try:
        async with ModelGateway(settings.llm_base_url, key, home / "model.sock", transcripts_dir(settings),
                                redact=settings.secret_values(), log=log) as gateway:
            yield gateway
    finally:
        shutil.rmtree(home, ignore_errors=True)
