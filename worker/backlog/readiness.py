"""When a Mull pull request may leave draft: the critique passed (or the fix rounds ran out) and its checks
passed or it has none. Leaving draft is GitHub's ``markPullRequestReadyForReview`` mutation."""

from __future__ import annotations

from typing import Any, Literal

from githubkit import GitHub

from bot.jobs import RepoRef

Checks = Literal["passed", "pending", "failed", "none"]

READY = "mutation($id: ID!) { markPullRequestReadyForReview(input: {pullRequestId: $id}) { clientMutationId } }"
TO_DRAFT = "mutation($id: ID!) { convertPullRequestToDraft(input: {pullRequestId: $id}) { clientMutationId } }"
FAILING = frozenset({"failure", "timed_out", "cancelled", "action_required", "startup_failure"})


async def checks_state(gh: GitHub, repo: RepoRef, sha: str) -> Checks:
    owner, name = repo.owner, repo.name
    data: Any = (await gh.rest.checks.async_list_for_ref(owner, name, sha, per_page=100)).json()
    runs = data.get("check_runs") or []
    if not runs:
        return "none"
    if any(run.get("conclusion") in FAILING for run in runs):
        return "failed"
    if any(run.get("status") != "completed" for run in runs):
        return "pending"
    return "passed"


async def failing_checks(gh: GitHub, repo: RepoRef, sha: str, limit: int = 4000) -> str:
    """The failing checks' titles, summaries and text, cut to ``limit`` characters, for the agent to read."""
    owner, name = repo.owner, repo.name
    data: Any = (await gh.rest.checks.async_list_for_ref(owner, name, sha, per_page=100)).json()
    parts = []
    for run in data.get("check_runs") or []:
        if run.get("conclusion") not in FAILING:
            continue
        output = run.get("output") or {}
        parts.append("\n".join(x for x in (f"### Check `{run.get('name')}`: {run.get('conclusion')}",
                                           output.get("title") or "", output.get("summary") or "",
                                           output.get("text") or "") if x))
    text = "\n\n".join(parts)
    return text if len(text) <= limit else text[:limit] + f"\n[cut: {len(text) - limit} more characters]"


async def mark_ready(gh: GitHub, pull: dict[str, Any]) -> bool:
    """Leave draft; False when it already was not a draft."""
    if not pull.get("draft"):
        return False
    await gh.async_graphql(READY, {"id": pull["node_id"]})
    return True
