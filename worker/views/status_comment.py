"""Mull's one status comment per issue, edited in place: queued → working → PR opened (or failed).

A hidden marker in the comment carries the run's state (revision, trigger, PR), so GitHub stays the
visible source of truth and the state can be rebuilt from it if Redis is lost. The marker is the comment's
last line and is read only from Mull's own comment (``worker.views.markers``); the notes above it quote agent and
model text, neutralised so that none of it can pass for the marker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any

from githubkit import GitHub
from githubkit.exception import RequestFailed
from redis.asyncio import Redis

from bot import keys
from bot.jobs import RepoRef
from worker.github.pages import every
from worker.ops import spend
from worker.ops.redis_reply import reply
from worker.views import markers

KIND = "status"


class Phase(StrEnum):
    QUEUED = "queued"
    WORKING = "working"
    PR_OPENED = "pr-opened"
    FAILED = "failed"
    WAITING = "waiting"  # for an answer to the plan's question, or for `/mull go`


@dataclass(frozen=True)
class RunState:
    """What the marker remembers about an issue's runs."""

    issue: int
    phase: Phase = Phase.QUEUED
    revision: int = 0
    trigger: str = ""
    pr: int | None = None
    pushed_sha: str | None = None  # last commit Mull pushed for ``trigger``; a rerun resumes from it
    note: str = ""  # what the last step said (a budget that ran out, why it failed)
    critique: str = ""  # latest news of the pull request: a critique's outcome, a revision
    plan: str = ""  # plan stage of this revision: "", asked, answered, proposed, approved
    plan_text: str = ""  # the agreed plan, as the agent reads it
    answer: str = ""  # the author's answer to the plan's question
    requested_by: str = ""  # who asked for the run: a rebuilt queue runs it for them
    mention: str = ""  # the comment that mentioned Mull to start the run (untrusted; a label clears it)
    labeled_at: float = 0.0  # its place in the repo's queue, kept here so a Redis loss does not lose it
    queue: str = ""  # where it stands in the queue: "2 ahead", held as a draft, review requested

    def begin(self, trigger: str) -> RunState:
        """A new trigger is a new revision; the same trigger (a rerun after a crash) is the same one."""
        if trigger == self.trigger and self.revision:
            return self
        return replace(self, revision=self.revision + 1, trigger=trigger, pushed_sha=None, note="", critique="",
                       plan="", plan_text="", answer="")

    def marker(self) -> str:
        return markers.dump(KIND, asdict(self))

    @classmethod
    def from_body(cls, issue: int, body: str) -> RunState | None:
        """The state in the marker on the last line of ``body`` (where ``render`` puts it), else None."""
        data = markers.load(KIND, body, "last")
        if not isinstance(data, dict):
            return None
        try:
            return cls(issue=issue, phase=Phase(data.get("phase", "queued")), revision=int(data.get("revision", 0)),
                       trigger=str(data.get("trigger", "")), pr=data.get("pr"), pushed_sha=data.get("pushed_sha"),
                       note=str(data.get("note", "")), critique=str(data.get("critique", "")),
                       plan=str(data.get("plan", "")), plan_text=str(data.get("plan_text", "")),
                       answer=str(data.get("answer", "")), requested_by=str(data.get("requested_by", "")),
                       mention=str(data.get("mention", "")),
                       labeled_at=float(data.get("labeled_at", 0.0)), queue=str(data.get("queue", "")))
        except (ValueError, TypeError):
            return None


def render(state: RunState, spent: str = "") -> str:
    """The comment's visible text for a state; ``spent``: the issue's model use so far, when it has any."""
    revision = f" (revision {state.revision})" if state.revision > 1 else ""
    retry = "To try again, comment `/mull retry`."
    heads = {
        Phase.QUEUED: f"🕐 **Mull** has queued this issue{revision}; an agent will pick it up shortly.",
        Phase.WORKING: f"⚙️ **Mull** is working on this issue{revision}. This comment will be updated.",
        Phase.PR_OPENED: f"✅ **Mull** opened #{state.pr} for this issue{revision}."
                         + ("" if state.critique else " It is a draft until the critique has looked at it."),
        Phase.FAILED: f"❌ **Mull** could not finish this issue{revision}.",
        Phase.WAITING: f"⏸️ **Mull** has a plan for this issue{revision} and is waiting.",
    }
    parts = [heads[state.phase]]
    if state.queue and state.phase in (Phase.QUEUED, Phase.PR_OPENED):
        parts.append(markers.neutralise(state.queue))
    if state.note:
        parts.append(markers.neutralise(state.note))
    if state.critique and state.phase is Phase.PR_OPENED:
        parts.append(markers.neutralise(state.critique))
    if spent:
        parts.append(f"**Model use so far:** {spent}.")
    if state.phase is Phase.FAILED:
        parts.append(retry)
    parts.append(state.marker())
    return "\n\n".join(parts)


class StatusComment:
    """Finds, creates and edits the status comment of one issue."""

    def __init__(self, gh: GitHub, repo: RepoRef, issue: int, bot_login: str, redis: Redis) -> None:
        self.gh = gh
        self.owner, self.name = repo.owner, repo.name
        self.repo_id = repo.repo_id
        self.issue = issue
        self.bot_login = bot_login
        self.redis = redis
        self.comment_id: int | None = None
        self.state = RunState(issue=issue)

    async def load(self) -> RunState:
        """Read the state from the comment (cached id first, then a scan of the issue's comments)."""
        cached = await reply(self.redis.hget(keys.issue_state(self.repo_id, self.issue), "status_comment"))
        if cached:
            try:
                comment: Any = (await self.gh.rest.issues.async_get_comment(self.owner, self.name, int(cached))).json()
                if markers.by_mull(comment, self.bot_login):
                    return self._adopt(comment)
            except RequestFailed as exc:
                if exc.response.status_code != 404:
                    raise
        async for comment in self._comments():
            if markers.by_mull(comment, self.bot_login) and markers.has(KIND, comment.get("body"), "last"):
                return self._adopt(comment)
        return self.state

    def _adopt(self, comment: dict) -> RunState:
        self.comment_id = int(comment["id"])
        self.state = RunState.from_body(self.issue, comment.get("body", "")) or self.state
        return self.state

    def _comments(self) -> AsyncIterator[Any]:
        return every(self.gh.rest.issues.async_list_comments, self.owner, self.name, self.issue)

    async def write(self, state: RunState, detail: str | None = None) -> None:
        """Edit the comment in place, creating it the first time; ``detail`` replaces the state's note."""
        if detail is not None:
            state = replace(state, note=detail)
        used = await spend.of_issue(self.redis, self.repo_id, self.issue)
        body = render(state, used.describe() if used.runs else "")
        self.state = state
        if self.comment_id is not None:
            try:
                await self.gh.rest.issues.async_update_comment(self.owner, self.name, self.comment_id, body=body)
                return
            except RequestFailed as exc:
                if exc.response.status_code != 404:
                    raise
        created = (await self.gh.rest.issues.async_create_comment(
            self.owner, self.name, self.issue, body=body)).json()
        self.comment_id = int(created["id"])
        await reply(self.redis.hset(keys.issue_state(self.repo_id, self.issue), "status_comment", str(self.comment_id)))
