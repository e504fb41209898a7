"""Open Mull's pull request for an issue, or update the one that exists: one issue, one branch, one PR.

The body's ``Fixes #N`` line is Mull's; everything the agent wrote is defused (``worker.defuse``), so the
pull request closes that issue and no other, and pings no one but the person who asked for the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from githubkit import GitHub
from githubkit.exception import RequestFailed

from bot.jobs import RepoRef
from worker import defuse, markers
from worker.agent.base import AgentResult

PR_MARKER = markers.dump("pr")


@dataclass(frozen=True)
class PullRequest:
    number: int
    url: str
    created: bool


def render_body(issue: int, result: AgentResult, revision: int, requested_by: str) -> str:
    """``Fixes #N``, what the agent changed and why, and what it could not do."""
    summary = defuse.markdown(result.summary.strip()) or "_The agent gave no summary._"
    parts = [f"Fixes #{issue}", "## What changed", summary]
    not_done = [defuse.markdown(item) for item in result.not_done]
    if result.budget_tripped:
        not_done.append(f"The {result.budget_tripped} budget ran out: this is the work done until then.")
    if result.error:
        not_done.append(f"The agent stopped early: {defuse.markdown(result.error)}")
    parts.append("## What it could not do")
    parts.append("\n".join(f"- {item}" for item in not_done) if not_done else "Nothing reported.")
    parts.append(f"<sub>Written by Mull's agent for @{requested_by}, revision {revision}. "
                 "Review it like any pull request.</sub>")
    parts.append(PR_MARKER)
    return "\n\n".join(parts)


async def find_open(gh: GitHub, owner: str, name: str, branch: str) -> dict | None:
    pulls: list[Any] = (await gh.rest.pulls.async_list(owner, name, head=f"{owner}:{branch}", state="open")).json()
    return pulls[0] if pulls else None


async def open_or_update(gh: GitHub, repo: RepoRef, branch: str, base: str, title: str, body: str) -> PullRequest:
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
    await gh.rest.pulls.async_update(owner, name, existing["number"], body=body)
    return PullRequest(existing["number"], existing["html_url"], False)
