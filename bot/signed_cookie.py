"""Cookies the browser keeps but cannot forge: a JSON value, an expiry and an HMAC over both.

The session pages keep who signed in (and which repositories GitHub said they may see) in the browser rather
than in Redis, so any web replica can read it and nothing secret is stored server-side. The user's GitHub token
is never put in one: it is used once, at sign-in, and dropped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any


def derive_key(secret: str, purpose: str) -> bytes:
    """A key of its own for ``purpose``, from a secret Mull already has (the webhook secret)."""
    return hmac.digest(secret.encode(), b"mull cookie key: " + purpose.encode(), hashlib.sha256)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CookieSigner:
    """``dump`` a dict for ``max_age`` seconds; ``load`` gives it back, or None when forged, expired or garbled."""

    def __init__(self, key: bytes, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self._clock = clock

    def _mac(self, body: str) -> str:
        return _b64(hmac.digest(self._key, body.encode(), hashlib.sha256))

    def dump(self, value: dict[str, Any], max_age: int) -> str:
        body = _b64(json.dumps({"v": value, "exp": int(self._clock()) + max_age}, separators=(",", ":")).encode())
        return f"{body}.{self._mac(body)}"

    def load(self, raw: str | None) -> dict[str, Any] | None:
        if not raw or len(raw) > 4096 or raw.count(".") != 1:
            return None
        body, mac = raw.split(".")
        if not hmac.compare_digest(self._mac(body).encode(), mac.encode()):
            return None
        try:
            data = json.loads(_unb64(body))
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("exp"), int) or data["exp"] < self._clock():
            return None
        value = data.get("v")
        return value if isinstance(value, dict) else None
