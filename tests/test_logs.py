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


def arq_job_lines() -> None:
    """What arq logs for a cron turn and for a job, with its own format strings."""
    arq = logging.getLogger("arq.worker")
    arq.info(logs.ARQ_JOB_STARTED, 0.5, "cron:sweep_backlogs:1700000000000:cron:sweep_backlogs", "", "")
    arq.info(logs.ARQ_JOB_DONE, 0.01, "cron:sweep_backlogs:1700000000000:cron:sweep_backlogs", "None")
    arq.info(logs.ARQ_JOB_STARTED, 0.5, "f00d:solve_issue", "", "")
    arq.error("%6.2fs ! %s failed, %s: %s", 0.3, "cron:send_digests", "RuntimeError", "boom")


def test_routine_cron_lines_are_debug_and_the_rest_keep_their_level() -> None:
    out = io.StringIO()
    logs.configure("INFO", stream=out)
    arq_job_lines()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["level"], line["event"].split()[1]) for line in lines] == [("info", "→"), ("error", "!")]
    assert "solve_issue" in lines[0]["event"]

    out = io.StringIO()
    logs.configure("DEBUG", stream=out)
    arq_job_lines()
    levels = [json.loads(line)["level"] for line in out.getvalue().splitlines()]
    assert levels == ["debug", "debug", "info", "error"]


def test_console_lines_for_people_json_lines_for_machines() -> None:
    out = io.StringIO()
    logs.configure("INFO", secrets=["hook-secret-1234"], stream=out, fmt="console")
    logs.get("test").info("worker started", worker_id="abc", note="with hook-secret-1234")
    line = out.getvalue().strip()
    assert "worker started" in line and "worker_id=abc" in line and "[info" in line
    assert not line.startswith("{") and "hook-secret-1234" not in line and "\x1b[" not in line  # no colour in a file

    out = io.StringIO()
    logs.configure("INFO", stream=out, fmt="auto")  # not a terminal: JSON
    logs.get("test").info("worker started")
    assert json.loads(out.getvalue())["event"] == "worker started"


def test_auto_is_console_on_a_terminal() -> None:
    import os
    import pty

    master, slave = pty.openpty()
    try:
        with os.fdopen(slave, "w") as terminal:
            logs.configure("INFO", stream=terminal, fmt="auto")
            logs.get("test").info("worker started", worker_id="abc")
            terminal.flush()
            written = os.read(master, 65536).decode()
    finally:
        os.close(master)
        logs.configure("INFO")  # later tests in this process must not log to the closed terminal
    assert "worker started" in written and not written.startswith("{") and "\x1b[" in written


def test_an_unknown_format_is_refused() -> None:
    import pytest

    with pytest.raises(ValueError, match="'pretty' is not one of auto, console, json"):
        logs.configure("INFO", stream=io.StringIO(), fmt="pretty")


def test_debug_level_leaves_out_markdown_its_rule_by_rule_lines() -> None:
    """At DEBUG, Mull's own debug lines show; markdown-it's trace of every rule it tries (kilobytes per comment
    parsed, and most of a worker's time at DEBUG) does not."""
    from markdown_it import MarkdownIt

    out = io.StringIO()
    logs.configure("DEBUG", stream=out)
    logs.get("mull.test").debug("own debug line")
    MarkdownIt().parse("# Title\n\n- a\n- b\n\n```\ncode\n```\n")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["own debug line"]
