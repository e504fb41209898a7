"""The review threads a revision answers, cut down to what people allowed to direct Mull wrote in them.

A review thread is open to anyone who can comment on the pull request, but only people with write,
maintain, admin or triage access may steer the agent (the same roles that may give ``/mull`` commands).
Comments by anyone else are dropped before the prompt is built, with a log line naming who and why, and a
thread with nothing left is not answered at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from githubkit import GitHub

from bot.jobs import RepoRef
from worker.webhooks.events import TRIGGER_ROLES, permission

THREADS = """query($owner: String!, $name: String!, $number: Int!) {
  repository(owner: $owner, name: $name) { pullRequest(number: $number) {
    reviewThreads(first: 100) { nodes { id isResolved isOutdated path line
      comments(first: 50) { nodes { id databaseId body author { login } } } } } } } }"""


@dataclass(frozen=True)
class Remark:
    login: str
    body: str


@dataclass(frozen=True)
class Thread:
    root_id: int  # the thread's first comment: GitHub takes replies to it only
    path: str
    line: int | None
    remarks: tuple[Remark, ...]


async def open_threads(gh: GitHub, repo: RepoRef, pr: int, bot_login: str, log: Any) -> list[Thread]:
    """Unresolved review threads started by someone other than Mull and not answered by Mull since (a thread
    Mull replied to, "Addressed in …", waits for the reviewer unless they wrote in it again), each holding
    only the remarks of people who may direct Mull."""
    owner, name = repo.owner, repo.name
    data: Any = await gh.async_graphql(THREADS, {"owner": owner, "name": name, "number": pr})
    nodes = data["repository"]["pullRequest"]["reviewThreads"]["nodes"]
    mull = (bot_login, bot_login.removesuffix("[bot]"))  # GraphQL names a bot without the suffix
    waiting = [t for t in nodes if not t["isResolved"] and t["comments"]["nodes"]
               and _login(t["comments"]["nodes"][0]) not in mull and _login(t["comments"]["nodes"][-1]) not in mull]
    roles: dict[str, str] = {}
    threads = []
    for node in waiting:
        remarks = []
        for comment in node["comments"]["nodes"]:
            login = _login(comment)
            if login in mull:
                continue
            if login not in roles:
                roles[login] = await permission(gh, repo, login) if login else "none"
                if roles[login] not in TRIGGER_ROLES:
                    log.info("review comment ignored", login=login, pr=pr,
                             reason=f"{roles[login]} access; revisions take comments from write or triage access only")
            if roles[login] in TRIGGER_ROLES:
                remarks.append(Remark(login, comment.get("body") or ""))
        if remarks:
            first = node["comments"]["nodes"][0]
            threads.append(Thread(int(first["databaseId"]), node["path"], node.get("line"), tuple(remarks)))
    return threads


def render_threads(threads: list[Thread]) -> str:
    parts = []
    for n, thread in enumerate(threads, start=1):
        talk = "\n".join(f"   - {remark.login}: {remark.body}" for remark in thread.remarks)
        parts.append(f"{n}. {thread.path} line {thread.line}:\n{talk}")
    return "Unresolved review threads:\n" + "\n".join(parts)


def _login(comment: dict[str, Any]) -> str:
    return str((comment.get("author") or {}).get("login") or "")
