"""The HTML of ``/setup``: plain forms, no script (the pages' Content-Security-Policy allows none).

Every variable part is escaped here; callers pass text, except ``page``'s body, which these functions build.
"""

from __future__ import annotations

import html
from collections.abc import Mapping

from starlette.responses import HTMLResponse

from bot.setup_choices import Choice

_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"}
_STYLE = ("body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:3rem auto;padding:0 1rem}"
          "code{background:#eee}fieldset{margin:1rem 0;border:1px solid #ccc}legend{font-weight:600}"
          ".problems{border:2px solid #b00;padding:0 1rem;background:#fff4f4}.problem{color:#b00}"
          "input[type=text],input[type=url]{width:100%;box-sizing:border-box}")
_FIELD_NAMES = {"owner": "Owner", "org": "Organisation", "host": "GitHub", "enterprise_url": "GitHub Enterprise Server",
                "webhook_url": "Webhook URL"}


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    """A whole page; ``body`` is HTML whose variable parts the caller escaped."""
    return HTMLResponse(f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)} - Mull"
                        f"</title><style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body>"
                        "</html>", status_code=status, headers=_HEADERS)


def link(url: str, text: str | None = None) -> str:
    return f"<a href=\"{html.escape(url)}\">{html.escape(text or url)}</a>"


def again(text: str) -> str:
    return f"<p>{html.escape(text)}</p><p><a href=/setup>Start again at /setup</a>.</p>"


def code_form() -> str:
    return ("<p>Mull printed a setup code on its console when it started (a line with <code>setup code</code>). "
            "Enter it to create the GitHub App: only whoever runs Mull can.</p><form method=post action=/setup>"
            "<p><label>Setup code: <input name=code id=code autocomplete=off autofocus></label> "
            "<button>Continue</button></p></form>")


def _hidden(name: str, value: str) -> str:
    return f"<input type=hidden name={name} value=\"{html.escape(value)}\">"


def _radio(name: str, value: str, chosen: str, text: str) -> str:
    checked = " checked" if value == chosen else ""
    ident = f"{name}-{value.replace('.', '-')}"
    return f"<label for={ident}><input type=radio name={name} id={ident} value=\"{html.escape(value)}\"{checked}> " \
           f"{text}</label>"


def _problem(problems: Mapping[str, str], name: str) -> str:
    return f"<p class=problem id={name}-problem>{html.escape(problems[name])}</p>" if name in problems else ""


def tunnel_help(target_host: str, port: int) -> str:
    """How to give GitHub a way in to Mull at ``target_host:port``, with the commands to copy."""
    origin = f"http://{target_host}:{port}"
    return (
        "<p>GitHub sends events from the internet and refuses <code>localhost</code> addresses. On a machine without "
        f"a public https address, start a tunnel to Mull (port {port}) in another terminal and use its address:</p><ul>"
        f"<li>cloudflared: <code>cloudflared tunnel --url {html.escape(origin)}</code> prints "
        "<code>https://NAME.trycloudflare.com</code>; the webhook URL is that address followed by "
        "<code>/webhooks/github</code>.</li>"
        f"<li>ngrok: <code>ngrok http {html.escape(origin)}</code> prints <code>https://NAME.ngrok-free.app</code>; "
        "the webhook URL is that address followed by <code>/webhooks/github</code>.</li>"
        "<li>smee.io: open <a href=https://smee.io/new>smee.io/new</a> for a channel, then run "
        f"<code>npx smee-client --url https://smee.io/CHANNEL --target {html.escape(origin)}/webhooks/github</code>; "
        "the webhook URL is the channel's address itself.</li></ul>"
        "<p>Keep the tunnel running while Mull works: every event comes through it. A quick tunnel's address changes "
        "when it restarts; then update the webhook URL in the App's settings on GitHub.</p>")


def choices_form(code: str, values: Mapping[str, str], problems: Mapping[str, str], tunnel: str) -> str:
    """Who owns the App, which GitHub, and the webhook URL; ``problems`` (by field) listed first."""
    listed = "".join(f"<li>{_FIELD_NAMES.get(name, name)}: {html.escape(text)}</li>" for name, text in problems.items())
    top = (f"<div class=problems role=alert><p><strong>Fix {'this' if len(problems) == 1 else 'these'} and press "
           f"Continue:</strong></p><ul>{listed}</ul></div>") if problems else ""
    return (
        f"{top}<p>Mull has no GitHub App yet. Say where to create it; the next page sends app-manifest.yml (the App's "
        "permissions and events) to GitHub, which shows you the App before creating it.</p>"
        f"<form method=post action=/setup>{_hidden('code', code)}{_hidden('step', 'choose')}"
        "<fieldset><legend>Who owns the App</legend>"
        f"<p>{_radio('owner', 'user', values['owner'], 'My personal account')}<br>"
        f"{_radio('owner', 'org', values['owner'], 'An organisation I administer:')} "
        f"<input type=text name=org id=org aria-label=\"Organisation name\" placeholder=acme-corp "
        f"value=\"{html.escape(values['org'])}\"></p>{_problem(problems, 'owner')}{_problem(problems, 'org')}"
        "</fieldset><fieldset><legend>Which GitHub</legend>"
        f"<p>{_radio('host', 'github.com', values['host'], 'GitHub.com')}<br>"
        f"{_radio('host', 'enterprise', values['host'], 'GitHub Enterprise Server (or GHE.com) at:')} "
        "<input type=url name=enterprise_url id=enterprise_url aria-label=\"GitHub Enterprise Server address\" "
        f"placeholder=https://github.example.com value=\"{html.escape(values['enterprise_url'])}\"></p>"
        f"{_problem(problems, 'host')}{_problem(problems, 'enterprise_url')}</fieldset>"
        "<fieldset><legend>Webhook URL</legend><p><label for=webhook_url>Where GitHub sends events: an https address "
        "GitHub can reach, ending in <code>/webhooks/github</code> (a smee.io channel is its own address).</label>"
        "<input type=url name=webhook_url id=webhook_url placeholder=https://NAME.trycloudflare.com/webhooks/github "
        f"value=\"{html.escape(values['webhook_url'])}\"></p>{_problem(problems, 'webhook_url')}{tunnel}</fieldset>"
        "<p><button id=continue>Continue</button></p></form>")


def create_form(code: str, choice: Choice, action: str, manifest: str, env_file: str,
                values: Mapping[str, str]) -> str:
    """The summary and the form that posts the manifest to GitHub; a button back to change the answers."""
    host = html.escape(choice.web_url.split("://", 1)[1])
    github_url = f", and <code>MULL_GITHUB_URL={html.escape(choice.api_url)}</code> so Mull talks to that GitHub" \
        if choice.enterprise else ""
    change = "".join(_hidden(name, value) for name, value in values.items())
    return (
        f"<p>The button below takes you to {host} to create Mull's GitHub App for {html.escape(choice.owner_text)}, "
        f"with the permissions and events of app-manifest.yml and the webhook URL <code>"
        f"{html.escape(choice.webhook_url)}</code>. GitHub lets you rename it (if <code>Mull</code> is taken), creates "
        f"it and sends you back here. Mull then saves the App's id, key and webhook secret in <code>"
        f"{html.escape(env_file)}</code>{github_url}.</p>"
        f"<form method=post action=\"{html.escape(action)}\" id=create>{_hidden('manifest', manifest)}"
        f"<button>Create the GitHub App on {host}</button></form>"
        f"<form method=post action=/setup>{_hidden('code', code)}{change}<p><button id=change>Change these answers"
        "</button></p></form>")
