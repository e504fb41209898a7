"""Removing known secret values from what crosses the gateway: responses to the agent and the transcript.

The agent is hostile and the upstream is not ours to trust with formatting: an endpoint that echoes the
request's headers in an error body would hand the real API key to the agent. So every byte that goes back
into the sandbox, and every string written to the transcript, has each known secret replaced first. Only
exact values are known (the API key, run tokens, operator-listed ``redact`` values); the longest is replaced
first so that a secret containing another is removed whole. A secret the upstream re-encodes (base64, JSON
escapes of unusual characters) is not recognised: API keys and tokens are plain ASCII, so none is expected.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

REDACTED = "[redacted]"


class Scrubber:
    """Replaces each of a fixed set of secrets with ``[redacted]``, in text and in bytes."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        self._texts = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))
        self._bytes = tuple(s.encode() for s in self._texts)
        self._in_json = tuple(orjson.dumps(s)[1:-1] for s in self._texts)  # each as it reads inside a JSON string

    def with_secret(self, secret: str) -> Scrubber:
        """A scrubber that also removes ``secret`` (a run's token)."""
        return Scrubber((*self._texts, secret))

    def text(self, value: str) -> str:
        for secret in self._texts:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value

    def data(self, value: bytes) -> bytes:
        for secret in self._bytes:
            if secret in value:
                value = value.replace(secret, REDACTED.encode())
        return value

    def tree(self, value: object) -> object:
        """A JSON-like value with every string in it (keys too) scrubbed."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.tree(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.tree(v) for v in value]
        return value

    def json(self, value: object) -> bytes:
        """``value`` as JSON with every string in it scrubbed, without walking it when no secret is in it.

        A JSON string holding a secret holds the secret's own JSON encoding (escapes are per character), so
        when none of those encodings occurs in the serialised value, no string holds a secret and the bytes
        stand as they are: one C-speed scan instead of a Python walk of a conversation of thousands of parts.
        """
        raw = orjson.dumps(value, default=str)
        if not any(secret in raw for secret in self._in_json):
            return raw
        return orjson.dumps(self.tree(value), default=str)
