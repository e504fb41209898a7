"""``mull replay``: sign a saved payload with the configured secret and POST it, as GitHub would."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
from githubkit import webhooks


class ReplayError(Exception):
    pass


def replay(file: Path, event: str, base_url: str, secret: str, delivery: str | None = None) -> tuple[int, str]:
    try:
        body = file.read_bytes()
    except OSError as exc:
        raise ReplayError(f"cannot read {file}: {exc.strerror}") from None
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": webhooks.sign(secret, body),
        "Content-Type": "application/json",
        "User-Agent": "mull-replay",
    }
    try:
        response = httpx.post(base_url.rstrip("/") + "/webhooks/github", content=body, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        raise ReplayError(f"cannot reach {base_url}: {exc}; is `mull serve` (or `mull web`) running?") from None
    return response.status_code, response.text
