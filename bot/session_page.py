"""The HTML of a run's session page, and of the one "not found" page every refusal shares.

Every text on the page was written by the agent or its model, so each is redacted again (the store already
did; a secret configured since is caught too) and HTML-escaped, and the page is served with a Content Security
Policy that runs no script at all: a ``<script>`` in a tool's output is text twice over. Long texts fold into
``<details>`` so a phone shows the run's shape first.
"""

from __future__ import annotations

import html
import time
from urllib.parse import quote

from bot.redaction import Redactor
from bot.session_store import TEXT_LIMIT, Session, Step

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "private, no-store",
    "X-Frame-Options": "DENY",
}
FOLD_CHARS = 600  # texts longer than this (or than FOLD_LINES lines) start folded
FOLD_LINES = 12

_STYLE = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:0 auto;max-width:60rem;padding:.75rem;
color:#1f2328;background:#fff}
h1{font-size:1.25rem;margin:.2rem 0 .6rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.15rem .8rem;margin:.5rem 0}dt{color:#59636e}dd{margin:0}
ol{padding-left:1.4rem}li.step{margin:.6rem 0;padding:.4rem .5rem;border:1px solid #d1d9e0;border-radius:6px}
.kind{font-size:.75rem;text-transform:uppercase;letter-spacing:.04em;color:#59636e;margin-right:.4rem}
.meta{color:#59636e;font-size:.85rem}.error{color:#b3261e}.ok{color:#1a7f37}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f8fa;padding:.45rem;border-radius:4px;margin:.3rem 0;
font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}
summary{cursor:pointer;color:#0969da}.note{background:#fff8c5;padding:.4rem;border-radius:4px}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def document(title: str, body: str) -> str:
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<meta name=viewport content='width=device-width,initial-scale=1'><title>{_e(title)}</title>"
            f"<style>{_STYLE}</style></head><body>{body}</body></html>")


def not_found(path: str, can_sign_in: bool) -> str:
    """One page for an unknown run, a run the viewer may not see, and a viewer who has not signed in."""
    sign_in = (f"<p><a href='/login/github?next={_e(quote(path, safe='/'))}'>Sign in with GitHub</a> to see runs "
               "of repositories you can see.</p>") if can_sign_in else ""
    return document("Not found", "<h1>Not found</h1><p>There is no run here that you can see.</p>" + sign_in)


def _block(text: str) -> str:
    """A text in a <pre>, folded when long."""
    shown = f"<pre>{_e(text)}</pre>"
    if len(text) > FOLD_CHARS or text.count("\n") >= FOLD_LINES:
        lines = text.count("\n") + 1
        return f"<details><summary>{lines} lines, {len(text)} characters</summary>{shown}</details>"
    return shown


def _step(step: Step, redact: Redactor) -> str:
    meta = []
    if step.exit_code is not None:
        meta.append(f"<span class={'ok' if step.exit_code == 0 else 'error'}>exit code {step.exit_code}</span>")
    if step.input_tokens is not None or step.output_tokens is not None:
        meta.append(f"{step.input_tokens or 0} tokens in, {step.output_tokens or 0} out")
    if step.ms is not None:
        meta.append(f"{step.ms / 1000:.1f} s")
    parts = [f"<span class=kind>{_e(step.kind)}</span><strong>{_e(redact.text(step.title))}</strong>"]
    if meta:
        parts.append(f" <span class=meta>{' · '.join(meta)}</span>")
    if step.detail:
        parts.append(_block(redact.text(step.detail)))
    if step.text:
        parts.append(_block(redact.text(step.text)))
    elif step.kind == "model" and not step.error:
        parts.append("<div class=meta>(no text: only tool calls)</div>")
    if step.error:
        parts.append(f"<div class=error>{_e(redact.text(step.error))}</div>")
    return f"<li class=step>{''.join(parts)}</li>"


def render(session: Session, redact: Redactor) -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(session.started))
    facts = [("Repository", session.repo), ("For", session.subject), ("Stage", session.stage),
             ("Started", started), ("Took", f"{session.seconds:.1f} s"),
             ("Tokens", f"{session.input_tokens} in, {session.output_tokens} out"),
             ("Outcome", session.outcome)]
    body = [f"<h1>Run {_e(session.run_id)}</h1><dl>"]
    body += [f"<dt>{name}</dt><dd>{_e(redact.text(value))}</dd>" for name, value in facts]
    body.append("</dl>")
    if session.omitted:
        body.append(f"<p class=note>{session.omitted} steps in the middle of this run are left out: the whole "
                    "session was too large to keep.</p>")
    if session.cut:
        body.append(f"<p class=note>{session.cut} long texts are cut in the middle (at {TEXT_LIMIT} characters "
                    "each).</p>")
    if session.files:
        items = "".join(f"<li><code>{_e(redact.text(f))}</code></li>" for f in session.files)
        body.append(f"<h2>Files changed ({len(session.files)})</h2><ul>{items}</ul>")
    body.append(f"<h2>Steps ({len(session.steps)})</h2><ol>")
    half = len(session.steps) // 2
    for number, step in enumerate(session.steps):
        if session.omitted and number == half:
            body.append(f"<li class=note>… {session.omitted} steps left out …</li>")
        body.append(_step(step, redact))
    body.append("</ol>")
    return document(f"Mull run {session.run_id}", "".join(body))
