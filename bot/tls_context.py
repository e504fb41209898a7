"""The one TLS client context of a process, shared by every HTTP client Mull makes.

Building a context reads the whole CA bundle: about 30 ms of CPU each time. httpx builds one for every client
and transport it creates, and Mull creates them often: each worker start (sinks, gateway, GitHub), each
installation token it mints. A context is safe to share between clients and connections.
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def client_context() -> ssl.SSLContext:
    """httpx's default verifying context (certifi's CA bundle, or SSL_CERT_FILE / SSL_CERT_DIR when set)."""
    return httpx.create_ssl_context()
