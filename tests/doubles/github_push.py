"""The webhooks a push sends: ``push`` per moved ref, ``pull_request.synchronize`` for open PRs on it.

Shared by git smart HTTP (the bot pushing), merges and GitHubDouble.push_as (people pushing).
"""

from __future__ import annotations

from . import bare_repo
from .bare_repo import ZERO_SHA
from .github_json import hook_payload, pull_json
from .github_state import Repo, State, User

Events = list[tuple[str, dict]]


def _commit_json(state: State, repo: Repo, commit: dict[str, str]) -> dict:
    who = {"name": commit["author_name"], "email": commit["author_email"], "username": None}
    return {"id": commit["sha"], "tree_id": commit["tree"], "distinct": True, "message": commit["message"],
            "timestamp": commit["date"], "url": f"{state.base_url}/{repo.full_name}/commit/{commit['sha']}",
            "author": who, "committer": who, "added": [], "removed": [], "modified": []}


def push_events(state: State, repo: Repo, before: dict[str, str], sender: User,
                pusher_email: str | None = None) -> Events:
    """Events for every ref that moved since ``before`` (bare_repo.refs taken before the push)."""
    after = bare_repo.refs(repo.path)
    default_sha = before.get(f"refs/heads/{repo.default_branch}")
    events: Events = []
    for ref in sorted(set(before) | set(after)):
        old, new = before.get(ref, ZERO_SHA), after.get(ref, ZERO_SHA)
        if old == new:
            continue
        commits = []
        if new != ZERO_SHA:
            since = old if old != ZERO_SHA else default_sha
            log = bare_repo.commits(repo.path, new, 20, since)
            commits = [_commit_json(state, repo, c) for c in reversed(log)]
        forced = old != ZERO_SHA and new != ZERO_SHA and not bare_repo.is_ancestor(repo.path, old, new)
        events.append(("push", hook_payload(
            state, repo, None, sender, ref=ref, before=old, after=new, created=old == ZERO_SHA,
            deleted=new == ZERO_SHA, forced=forced, base_ref=None,
            compare=f"{state.base_url}/{repo.full_name}/compare/{old[:12]}...{new[:12]}", commits=commits,
            head_commit=commits[-1] if commits else None, pusher={"name": sender.login, "email": pusher_email})))
        branch = ref.removeprefix("refs/heads/")
        for pull in list(repo.pulls.values()):
            if ref.startswith("refs/heads/") and pull.head_ref == branch and new != ZERO_SHA \
                    and repo.issues[pull.number].state == "open":
                events.append(("pull_request", hook_payload(state, repo, "synchronize", sender, number=pull.number,
                                                            before=old, after=new,
                                                            pull_request=pull_json(state, repo, pull))))
    return events
