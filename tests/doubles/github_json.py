"""GitHub-shaped JSON for the double's objects.

Every required field of githubkit's models is present so ``response.parsed_data`` validates, not just
lenient ``.json()`` access; tests/test_doubles.py checks that against githubkit's schemas.
"""

from __future__ import annotations

from . import bare_repo
from .github_diff import diff_stats
from .github_state import Comment, Installation, Issue, Label, Pull, Reaction, Repo, State, User, iso, now

REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")
ROLE_TO_PERMISSION = {"admin": "admin", "maintain": "write", "write": "write", "triage": "read",
                      "read": "read", "none": "none"}
ROLE_RANK = ["none", "read", "triage", "write", "maintain", "admin"]

_USER_URLS = ("followers", "following{/other_user}", "gists{/gist_id}", "starred{/owner}{/repo}",
              "subscriptions", "organizations", "repos", "events{/privacy}", "received_events")
_REPO_URLS = {
    "archive": "{archive_format}{/ref}", "assignees": "{/user}", "blobs": "{/sha}", "branches": "{/branch}",
    "collaborators": "{/collaborator}", "comments": "{/number}", "commits": "{/sha}",
    "compare": "{base}...{head}", "contents": "{+path}", "contributors": "", "deployments": "",
    "downloads": "", "events": "", "forks": "", "git_commits": "{/sha}", "git_refs": "{/sha}",
    "git_tags": "{/sha}", "issue_comment": "{/number}", "issue_events": "{/number}", "issues": "{/number}",
    "keys": "{/key_id}", "labels": "{/name}", "languages": "", "merges": "", "milestones": "{/number}",
    "notifications": "{?since,all,participating}", "pulls": "{/number}", "releases": "{/id}",
    "stargazers": "", "statuses": "{sha}", "subscribers": "", "subscription": "", "tags": "",
    "teams": "", "trees": "{/sha}", "hooks": "",
}


def user_json(state: State, user: User) -> dict:
    base = state.base_url
    api = f"{base}/users/{user.login}"
    data = {"login": user.login, "id": user.id, "node_id": f"U_{user.id}", "type": user.type,
            "avatar_url": f"{base}/avatars/u/{user.id}", "gravatar_id": "", "url": api,
            "html_url": f"{base}/{user.login}", "site_admin": False}
    for name in _USER_URLS:
        key = name.split("{")[0]
        data[f"{key}_url"] = f"{api}/{name}"
    return data


def public_user_json(state: State, user: User) -> dict:
    extra = dict.fromkeys(("name", "company", "blog", "location", "email", "hireable", "bio"), None)
    counts = dict.fromkeys(("public_repos", "public_gists", "followers", "following"), 0)
    stamp = iso(now())
    return {**user_json(state, user), **extra, **counts, "created_at": stamp, "updated_at": stamp}


def app_json(state: State) -> dict:
    app, stamp = state.app, iso(now())
    owner = state.user(app.owner_login)
    return {"id": app.app_id, "slug": app.slug, "node_id": f"A_{app.app_id}",
            "client_id": f"Iv1.{app.app_id}", "owner": user_json(state, owner), "name": app.name,
            "description": "Mull test double",
            "external_url": state.base_url, "html_url": f"{state.base_url}/apps/{app.slug}",
            "created_at": stamp, "updated_at": stamp,
            "permissions": {"contents": "write", "issues": "write", "pull_requests": "write",
                            "metadata": "read"},
            "events": ["issues", "issue_comment", "pull_request", "push"], "installations_count": 1}


def repo_json(state: State, repo: Repo) -> dict:
    base, full = state.base_url, repo.full_name
    api = f"{base}/repos/{full}"
    stamp = iso(repo.created_at)
    data = {
        "id": repo.id, "node_id": f"R_{repo.id}", "name": repo.name, "full_name": full,
        "owner": user_json(state, repo.owner), "private": repo.private, "visibility":
        "private" if repo.private else "public", "html_url": f"{base}/{full}", "description": None,
        "fork": False, "url": api, "git_url": f"git://127.0.0.1/{full}.git",
        "ssh_url": f"git@127.0.0.1:{full}.git",
        "clone_url": f"{base}/git/{full}.git", "svn_url": f"{base}/{full}", "mirror_url": None,
        "homepage": None, "language": None, "forks_count": 0, "stargazers_count": 0, "watchers_count": 0,
        "size": 1, "default_branch": repo.default_branch,
        "open_issues_count": sum(i.state == "open" for i in repo.issues.values()),
        "has_issues": True, "has_projects": False, "has_wiki": False, "has_pages": False,
        "has_downloads": False, "has_discussions": False, "archived": False, "disabled": False,
        "pushed_at": stamp, "created_at": stamp, "updated_at": stamp, "subscribers_count": 0,
        "network_count": 0, "license": None, "forks": 0, "watchers": 0, "topics": [],
        "allow_forking": True, "is_template": False, "web_commit_signoff_required": False,
    }
    data["open_issues"] = data["open_issues_count"]
    for name, suffix in _REPO_URLS.items():
        data[f"{name}_url"] = f"{api}/{name.replace('git_', 'git/')}{suffix}"
    return data


def installation_json(state: State, inst: Installation) -> dict:
    stamp = iso(now())
    app = app_json(state)
    return {"id": inst.id, "account": user_json(state, inst.account),
            "repository_selection": "all" if inst.repos is None else "selected",
            "access_tokens_url": f"{state.base_url}/app/installations/{inst.id}/access_tokens",
            "repositories_url": f"{state.base_url}/installation/repositories",
            "html_url": f"{state.base_url}/settings/installations/{inst.id}", "app_id": app["id"],
            "app_slug": app["slug"], "target_id": inst.account.id, "target_type": inst.account.type,
            "permissions": app["permissions"], "events": app["events"], "created_at": stamp,
            "updated_at": stamp, "single_file_name": None, "suspended_by": None, "suspended_at": None}


def label_json(state: State, repo: Repo, label: Label) -> dict:
    url = f"{state.base_url}/repos/{repo.full_name}/labels/{label.name}"
    return {"id": label.id, "node_id": f"LA_{label.id}", "url": url, "name": label.name,
            "description": label.description, "color": label.color, "default": False, "archived_at": None,
            "archived_by": None}


def reactions_summary(url: str, reactions: list[Reaction]) -> dict:
    summary = {"url": f"{url}/reactions", "total_count": len(reactions)}
    summary.update({c: sum(r.content == c for r in reactions) for c in REACTIONS})
    return summary


def reaction_json(state: State, reaction: Reaction) -> dict:
    return {"id": reaction.id, "node_id": f"REA_{reaction.id}", "user": user_json(state, reaction.user),
            "content": reaction.content, "created_at": iso(reaction.created_at)}


def issue_json(state: State, repo: Repo, issue: Issue) -> dict:
    api = f"{state.base_url}/repos/{repo.full_name}"
    url = f"{api}/issues/{issue.number}"
    kind = "pull" if issue.is_pull else "issues"
    data = {
        "id": issue.id, "node_id": f"I_{issue.id}", "url": url, "repository_url": api,
        "labels_url": f"{url}/labels{{/name}}", "comments_url": f"{url}/comments",
        "events_url": f"{url}/events",
        "html_url": f"{state.base_url}/{repo.full_name}/{kind}/{issue.number}", "number": issue.number,
        "state": issue.state, "state_reason": issue.state_reason, "title": issue.title, "body": issue.body,
        "user": user_json(state, issue.user),
        "labels": [label_json(state, repo, repo.labels[n.lower()]) for n in issue.labels],
        "assignee": user_json(state, state.user(issue.assignees[0])) if issue.assignees else None,
        "assignees": [user_json(state, state.user(login)) for login in issue.assignees], "milestone": None,
        "locked": False, "active_lock_reason": None,
        "comments": len(state.comments_on(repo, issue.number)), "closed_at": iso(issue.closed_at),
        "created_at": iso(issue.created_at), "updated_at": iso(issue.updated_at), "closed_by": None,
        "author_association": author_association(repo, issue.user),
        "reactions": reactions_summary(url, issue.reactions),
    }
    if issue.is_pull:
        pull = repo.pulls[issue.number]
        html = data["html_url"]
        data["pull_request"] = {"url": f"{api}/pulls/{issue.number}", "html_url": html,
                                "diff_url": f"{html}.diff", "patch_url": f"{html}.patch",
                                "merged_at": iso(pull.merged_at)}
        data["draft"] = pull.draft
    return data


def author_association(repo: Repo, user: User) -> str:
    if user.login.lower() == repo.owner.login.lower():
        return "OWNER"
    role = repo.collaborators.get(user.login.lower(), "none")
    return "COLLABORATOR" if role not in ("none", "read") else "NONE"


def comment_json(state: State, repo: Repo, comment: Comment) -> dict:
    api = f"{state.base_url}/repos/{repo.full_name}"
    url = f"{api}/issues/comments/{comment.id}"
    kind = "pull" if repo.issues[comment.issue_number].is_pull else "issues"
    html = f"{state.base_url}/{repo.full_name}/{kind}/{comment.issue_number}#issuecomment-{comment.id}"
    return {"id": comment.id, "node_id": f"IC_{comment.id}", "url": url, "html_url": html,
            "body": comment.body, "user": user_json(state, comment.user),
            "created_at": iso(comment.created_at),
            "updated_at": iso(comment.updated_at), "issue_url": f"{api}/issues/{comment.issue_number}",
            "author_association": author_association(repo, comment.user),
            "performed_via_github_app": app_json(state) if comment.user is state.bot else None,
            "reactions": reactions_summary(url, comment.reactions)}


def branch_json(state: State, repo: Repo, ref: str, sha: str) -> dict:
    return {"label": f"{repo.owner.login}:{ref}", "ref": ref, "sha": sha,
            "user": user_json(state, repo.owner), "repo": repo_json(state, repo)}


def pull_json(state: State, repo: Repo, pull: Pull) -> dict:
    issue = repo.issues[pull.number]
    head_sha = bare_repo.rev_parse(repo.path, pull.head_ref) if not pull.merged else None
    pull.head_sha = head_sha or pull.head_sha
    base_sha = bare_repo.rev_parse(repo.path, pull.base_ref) or ""
    stats = diff_stats(repo.path, pull.merged_base_sha or base_sha, pull.head_sha) if base_sha else {}
    api = f"{state.base_url}/repos/{repo.full_name}"
    url = f"{api}/pulls/{pull.number}"
    html = f"{state.base_url}/{repo.full_name}/pull/{pull.number}"
    issue_url = f"{api}/issues/{pull.number}"
    data = issue_json(state, repo, issue)
    for key in ("repository_url", "labels_url", "events_url", "pull_request", "reactions", "closed_by",
                "state_reason", "comments_url"):
        data.pop(key, None)
    links = {"self": url, "html": html, "issue": issue_url, "comments": f"{issue_url}/comments",
             "review_comments": f"{url}/comments", "review_comment": f"{api}/pulls/comments{{/number}}",
             "commits": f"{url}/commits", "statuses": f"{api}/statuses/{pull.head_sha}"}
    data.update({
        "id": pull.id, "node_id": f"PR_{pull.id}", "url": url, "html_url": html, "diff_url": f"{html}.diff",
        "patch_url": f"{html}.patch", "issue_url": issue_url, "commits_url": links["commits"],
        "review_comments_url": links["review_comments"], "review_comment_url": links["review_comment"],
        "comments_url": links["comments"], "statuses_url": links["statuses"], "draft": pull.draft,
        "head": branch_json(state, repo, pull.head_ref, pull.head_sha),
        "base": branch_json(state, repo, pull.base_ref, base_sha),
        "_links": {k: {"href": v} for k, v in links.items()}, "auto_merge": None, "merged": pull.merged,
        "merged_at": iso(pull.merged_at), "merge_commit_sha": pull.merge_commit_sha, "mergeable": True,
        "mergeable_state": "clean", "rebaseable": True,
        "merged_by": user_json(state, pull.merged_by) if pull.merged_by else None,
        "review_comments": sum(c.number == pull.number and not c.deleted and not c.pending
                               for c in repo.review_comments.values()),
        "maintainer_can_modify": False, "commits": 1, "additions": 0, "deletions": 0, "changed_files": 0,
        **stats, "requested_teams": [],
        "requested_reviewers": [user_json(state, state.user(login)) for login in pull.requested_reviewers],
    })
    return data


def permission_json(state: State, repo: Repo, user: User, role: str) -> dict:
    rank = ROLE_RANK.index(role)
    flags = {name: rank >= i + 1 for i, name in enumerate(("pull", "triage", "push", "maintain", "admin"))}
    collaborator = {**user_json(state, user), "permissions": flags, "role_name": role}
    return {"permission": ROLE_TO_PERMISSION[role], "role_name": role, "user": collaborator}


def hook_payload(state: State, repo: Repo, action: str | None, sender: User, **objects: object) -> dict:
    """A webhook payload: ``action`` (when the event has one), the event's objects, then the envelope."""
    payload: dict = {"action": action} if action else {}
    payload.update(objects)
    payload.update(sender_and_repo(state, repo, sender))
    return payload


def sender_and_repo(state: State, repo: Repo, sender: User) -> dict:
    """The envelope every webhook payload carries."""
    inst = state.installation_for(repo)
    envelope = {"repository": repo_json(state, repo), "sender": user_json(state, sender)}
    if inst is not None:
        envelope["installation"] = {"id": inst.id, "node_id": f"MDIzOkludGVncmF0aW9u{inst.id}"}
    return envelope
