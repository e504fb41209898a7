"""Pull request webhooks as a handler sees them, for unit tests that drive ``worker/`` handlers over respx.

``event`` builds the parsed delivery (installation client on the fake API, Mull's identity, a recording
log); ``pull`` builds the pull request part, with the three things that make one Mull's as arguments; ``handle``
runs a handler with a worker's context on a real Redis.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import respx
from githubkit import GitHub, TokenAuthStrategy

from bot.jobs import Delivery
from bot.settings import load_settings
from worker.github.app import BotIdentity
from worker.jobs.queue import connect
from worker.webhooks.events import Event

from .recording_log import RecordingLog
from .services import make_services

API = "https://api.github.test"
REPO, REPO_ID, PR = "acme/widgets", 11, 8
BOT = BotIdentity("mull", "mull[bot]", 4242)


def github() -> GitHub:
    return GitHub(TokenAuthStrategy("ghs_" + "t" * 36), base_url=API + "/", http_cache=False, auto_retry=False)


class App:
    """The slice of ``GitHubApp`` that config loading and the jobs use: every client is the one given."""

    def __init__(self, gh: GitHub) -> None:
        self.gh = gh

    def installation(self, *_: Any) -> GitHub:
        return self.gh

    async def identity(self, _: GitHub) -> BotIdentity:
        return BOT


def pull(head_repo_id: int | None = REPO_ID, opener: str = BOT.login, ref: str = "mull/issue-7") -> dict:
    head_repo = None if head_repo_id is None else {"id": head_repo_id, "full_name": f"fork{head_repo_id}/widgets"}
    return {"number": PR, "state": "open", "title": "Fix #7", "draft": True,
            "user": {"login": opener, "type": "Bot" if opener.endswith("[bot]") else "User"},
            "head": {"ref": ref, "sha": "a" * 40, "repo": head_repo},
            "base": {"ref": "main", "sha": "b" * 40, "repo": {"id": REPO_ID, "full_name": REPO}}}


def event(name: str, gh: GitHub, sender: str, the_pull: dict, **extra: Any) -> Event:
    payload = {"action": extra.pop("action", "created"), "pull_request": the_pull,
               "sender": {"login": sender, "type": "User"}, "repository": {"id": REPO_ID, "full_name": REPO},
               "installation": {"id": 9}, **extra}
    delivery = Delivery(f"guid-{sender}-{name}", name, json.dumps(payload).encode(), 0)
    return Event(delivery, payload, gh, BOT, RecordingLog())


def review_comment(gh: GitHub, sender: str, the_pull: dict, body: str = "Rename this.") -> Event:
    return event("pull_request_review_comment", gh, sender, the_pull,
                 comment={"id": 5, "body": body, "user": {"login": sender, "type": "User"}})


def roles(mock: respx.MockRouter, **by_login: str) -> respx.Route:
    """Collaborator permission answers: ``roles(mock, rick="read")``; anyone else is not a collaborator."""
    def answer(request: httpx.Request) -> httpx.Response:
        login = request.url.path.split("/")[-2]
        if login not in by_login:
            return httpx.Response(404, json={"message": "Not Found"})
        role = by_login[login]
        permission = {"maintain": "write", "triage": "read"}.get(role, role)
        return httpx.Response(200, json={"permission": permission, "role_name": role, "user": {"login": login}})
    return mock.get(url__regex=rf"{API}/repos/{REPO}/collaborators/[^/]+/permission").mock(side_effect=answer)


def no_config(mock: respx.MockRouter) -> None:
    mock.get(url__regex=rf"{API}/repos/.+/contents/.*").mock(
        return_value=httpx.Response(404, json={"message": "Not Found"}))


def handle(redis_url: str, act: Callable[[dict[str, Any], Any], Awaitable[str]],
           make: Callable[[Any], Any]) -> tuple[str, list[str], Any]:
    """Run one handler on an emptied Redis; its answer, the ids of the jobs it queued, and the event."""
    async def main() -> tuple[str, list[str], Any]:
        pool = await connect(redis_url)
        await pool.flushdb()
        async with github() as gh:
            the_event = make(gh)
            ctx = make_services(pool, log=the_event.log, settings=load_settings({}, env_file=None), github=App(gh))
            answer = await act(ctx, the_event)
        queued = [job.job_id for job in await pool.queued_jobs()]
        await pool.aclose()
        return answer, queued, the_event
    return asyncio.run(main())
