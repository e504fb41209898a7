"""Open Mull's pull request for an issue, or update the one that exists: one issue, one branch, one PR.

The body's ``Fixes #N`` line is Mull's; everything the agent wrote is defused (``worker.views.defuse``), so the
pull request closes that issue and no other, and pings no one but the person who asked for the run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from githubkit import GitHub
from githubkit.exception import RequestFailed

from bot.jobs import RepoRef
from worker.agent.base import AgentResult
from worker.views import defuse, markers

PR_MARKER = markers.dump("pr")
# Mull's own sections of the body, which a revision rewrites in place: Mull's test run and the model use.
TESTS, SPEND = "tests", "spend"
MULL_MARKERS = (PR_MARKER, *(markers.dump(edge + kind) for kind in (TESTS, SPEND) for edge in ("", "end")))
BLOCKED_LISTED = 20  # refused hosts named in the body; the rest are summed
_NOT_HOST = re.compile(r"[^A-Za-z0-9.:\[\]-]")


@dataclass(frozen=True)
class PullRequest:
    number: int
    url: str
    created: bool


def render_body(issue: int, result: AgentResult, revision: int, requested_by: str, tests: str = "",
                session_url: str | None = None, so_far: str = "") -> str:
    """``Fixes #N``, what the agent changed and why, what it could not do, ``tests``: Mull's own line about its
    test run (``worker/views/command_output.py``, already made inert), the model use: this run's
    (``result.spent``) and the issue's so far, plan and critiques included (``so_far``), and a link to the run's
    session page (``session_url``: Mull's own address, never the agent's)."""
    summary = defuse.markdown(result.summary.strip()) or "_The agent gave no summary._"
    parts = [f"Fixes #{issue}", "## What changed", summary]
    not_done = [defuse.markdown(item) for item in result.not_done]
    if result.budget_tripped:
        not_done.append(f"The {result.budget_tripped} budget ran out: this is the work done until then.")
    if result.error:
        not_done.append(f"The agent stopped early: {defuse.markdown(result.error)}")
    parts.append("## What it could not do")
    parts.append("\n".join(f"- {item}" for item in not_done) if not_done else "Nothing reported.")
    parts.append(section(TESTS, tests))
    if result.blocked:
        parts += ["## Blocked network requests", blocked_report(result.blocked)]
    parts.append(section(SPEND, model_use(result.spent, so_far)))
    if session_url:
        parts.append(f"[What the agent did, step by step]({session_url}) (sign in with GitHub to see it).")
    parts.append(f"<sub>Written by Mull's agent for @{requested_by}, revision {revision}. "
                 "Review it like any pull request.</sub>")
    parts.append(PR_MARKER)
    return "\n\n".join(parts)


def model_use(this_run: str, so_far: str, run: str = "This run") -> str:
    """The body's "Model use" part: ``run``'s use and the pull request's so far (plan, runs and critiques)."""
    lines = [f"- {run}: {this_run}" if this_run else "",
             f"- This pull request so far (plan, runs and critiques): {so_far}" if so_far else ""]
    listed = "\n".join(line for line in lines if line)
    return f"## Model use\n\n{listed}" if listed else ""


def section(kind: str, text: str) -> str:
    """``text`` between ``kind``'s two markers, so that a later run finds it and rewrites it (``with_section``)."""
    inside = f"\n\n{text}\n\n" if text else "\n"
    return f"{markers.dump(kind)}{inside}{markers.dump('end' + kind)}"


def with_section(body: str, kind: str, text: str) -> str | None:
    """``body`` with ``kind``'s section holding ``text`` now; None when the body no longer has exactly one.

    The markers can only be Mull's: every text in the body that Mull did not write (the agent's summary, test
    output, refused host names) has its HTML comments broken or cannot hold one, so a section cannot be forged;
    a person who edits the body may remove it, and then Mull leaves the body to them.
    """
    start, end = markers.dump(kind), markers.dump("end" + kind)
    if body.count(start) != 1 or body.count(end) != 1 or body.index(end) < body.index(start):
        return None
    return body[:body.index(start)] + section(kind, text) + body[body.index(end) + len(end):]


def blocked_report(blocked: tuple[tuple[str, int], ...]) -> str:
    """What the sandbox's egress proxy refused, as a list a maintainer can act on (Copilot's firewall report).

    The targets come from the agent's requests; the proxy counts only host names and addresses, and here each
    is also cut down to their characters, in a code span."""
    lines = [f"- {_code(target)} × {count}" for target, count in blocked[:BLOCKED_LISTED]]
    rest = blocked[BLOCKED_LISTED:]
    if rest:
        lines.append(f"- … and {len(rest)} more hosts, {sum(count for _target, count in rest)} requests")
    return ("The sandbox refused these connections. To allow a host, list it in `network.allow` of "
            "`.github/mull.yml` (and set `network.agent: true` for the agent's own commands); a host outside the "
            "operator's `MULL_SANDBOX_ALLOW_HOSTS` needs the operator too.\n\n" + "\n".join(lines))


def _code(target: str) -> str:
    """A host:port in a code span; any character a host name or address cannot hold becomes ``?``."""
    return "`" + _NOT_HOST.sub("?", target[:300]) + "`"


async def find_open(gh: GitHub, owner: str, name: str, branch: str) -> dict | None:
    pulls: list[Any] = (await gh.rest.pulls.async_list(owner, name, head=f"{owner}:{branch}", state="open")).json()
    return pulls[0] if pulls else None


async def open_or_update(gh: GitHub, repo: RepoRef, branch: str, base: str, title: str, body: str) -> PullRequest:
    """The open pull request of ``branch`` into ``base``: created as a draft, or updated (body, and its base
    when the run was asked to start from another branch)."""
    owner, name = repo.owner, repo.name
    existing = await find_open(gh, owner, name, branch)
    if existing is None:
        try:
            created = (await gh.rest.pulls.async_create(
                owner, name, title=title, head=branch, base=base, body=body, draft=True)).json()
            return PullRequest(created["number"], created["html_url"], True)
        except RequestFailed as exc:
            # Another run created it between our lookup and our create: adopt that one.
            if exc.response.status_code != 422:
                raise
            existing = await find_open(gh, owner, name, branch)
            if existing is None:
                raise
    if (existing.get("base") or {}).get("ref") != base:
        await gh.rest.pulls.async_update(owner, name, existing["number"], body=body, base=base)
    else:
        await gh.rest.pulls.async_update(owner, name, existing["number"], body=body)
    return PullRequest(existing["number"], existing["html_url"], False)
