"""One verifying TLS context per process, handed to the HTTP clients Mull makes again and again."""

from __future__ import annotations

import ssl

import httpx

from bot.redaction import Redactor
from bot.tls_context import client_context
from worker.github.outbound import RedactingTransport


def test_the_context_is_built_once_and_verifies_certificates_and_host_names() -> None:
    context = client_context()
    assert context is client_context()
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert context.get_ca_certs() or context.cert_store_stats()["x509_ca"] > 0


def test_the_github_transport_uses_it() -> None:
    transport = RedactingTransport(Redactor())
    inner = transport._inner
    assert isinstance(inner, httpx.AsyncHTTPTransport)
    assert inner._pool._ssl_context is client_context()
