"""One redactor for every text that leaves Mull: log lines, GitHub comments and bodies, sink messages.

Secrets reach text in surprising ways (exception messages, an endpoint that echoes the request's headers,
an agent that read an environment variable), so the same rules apply wherever text goes: the configured
secret values by value, and anything shaped like a credential by pattern. Keeping one implementation means
a new token shape is caught in logs and on GitHub at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[redacted]"

# Installation/user tokens, JWTs, PEM blocks, API keys, credentials in URLs, Authorization headers.
PATTERNS = (
    re.compile(r"\bgh[pousr]_[A-Za-z0-9_]{16,}"),
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.S),
    re.compile(r"\bsk-(?:[A-Za-z0-9]+-)*[A-Za-z0-9_-]{20,}"),
    re.compile(r"(?<=://)[^/@\s:]+:[^/@\s]+(?=@)"),
    re.compile(r"(?<=://:)[^/@\s]+(?=@)"),  # a password with no user name (redis://:PASSWORD@host)
    re.compile(r"(?i)(?<=password=)[^&\s'\"]+"),  # a password as a URL parameter (?sentinel_password=...)
    re.compile(r"(?i)(?<=authorization: )(basic|bearer|token) [^\s'\"]+"),
    re.compile(r"(?i)(?<=\"authorization\": \")(basic|bearer|token) [^\"]+"),
)


class Redactor:
    """Removes known secret values (longest first) and anything shaped like a credential from text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def add(self, secret: str) -> None:
        if secret and secret not in self._secrets:
            self._secrets.append(secret)
            self._secrets.sort(key=len, reverse=True)

    def with_secrets(self, secrets: Iterable[str]) -> Redactor:
        """A redactor that also knows ``secrets`` (this one is left as it is)."""
        return Redactor([*self._secrets, *secrets])

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        for pattern in PATTERNS:
            value = pattern.sub(REDACTED, value)
        return value


def scrub(text: str) -> str:
    """Credential-shaped substrings removed, for text shown where no configured secret is at hand."""
    return Redactor().text(text)
