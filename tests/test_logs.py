"""Log redaction: no secret reaches a log line, however it got into the message."""

from __future__ import annotations

import io
import json
import logging

from bot import logs


def test_known_secrets_and_credential_shapes_are_redacted() -> None:
    out = io.StringIO()
    logs.configure("DEBUG", secrets=["hook-secret-1234"], stream=out)
    log = logs.get("test")
    log.info("pushing", url="https://x-access-token:ghs_abcdefghijklmnopqrstuvwxyz0123@github.com/o/r.git",
             header="Authorization: token ghs_ABCDEFGHIJKLMNOPQRSTUV", note="secret is hook-secret-1234",
             nested={"k": ["-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----"]})
    logging.getLogger("arq").warning("stdlib line with ghs_zzzzzzzzzzzzzzzzzzzzzzzz")
    text = out.getvalue()
    for secret in ("ghs_abcdefghijklmnop", "ghs_ABCDEFGHIJ", "hook-secret-1234", "MIIE", "ghs_zzzz"):
        assert secret not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0]["event"] == "pushing" and "[redacted]" in lines[0]["url"]
    assert lines[1]["event"].startswith("stdlib line")


def test_scrub_for_text_shown_on_github() -> None:
    assert "ghs_" not in logs.scrub("git push failed for ghs_0123456789abcdefghijkl")
