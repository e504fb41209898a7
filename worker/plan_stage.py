"""Running the plan stage inside an issue's run, and resuming it on ``/mull go`` or the author's answer."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from githubkit import GitHub

from bot.jobs import RepoRef
from bot.settings import MullSettings
from worker.agent.prompt import INSTRUCTION_FILES, INSTRUCTION_LIMIT
from worker.github_app import BotIdentity, GitHubApp
from worker.plan import find_plan_comment, make_plan, plan_for_agent, plan_prompt, render_plan
from worker.repo_cache import RepoCache, git
from worker.repo_config import RepoConfig
from worker.services import Services
from worker.status import Phase, RunState

WAITING_ANSWER = "Mull asked a question in its plan above and goes on once @{author} answers in a comment."
WAITING_GO = "Reply `/mull go` to start the agent on the plan above, or `/mull stop` to cancel."


@dataclass(frozen=True)
class Planned:
    """The run's state after the plan stage; ``waits``: the run stops here for an answer or `/mull go`, and the
    status comment says ``note`` (None: what it says already)."""

    state: RunState
    waits: bool = False
    note: str | None = None


async def plan_stage(svc: Services, gh: GitHub, ref: RepoRef, config: RepoConfig, state: RunState,
                     issue: dict[str, Any], repo: dict[str, Any], bot: BotIdentity, log: Any) -> Planned:
    """The state to implement with, or the state to wait in (for an answer or for `/mull go`)."""
    if state.plan == "approved" or config.plan == "off":
        return Planned(state)
    if state.plan in ("asked", "proposed"):
        return Planned(replace(state, phase=Phase.WAITING), waits=True)
    settings: MullSettings = svc.settings
    app: GitHubApp = svc.github
    cache: RepoCache = svc.repos
    mirror = await cache.fetch(int(repo["id"]), repo["clone_url"], await app.token(gh))
    head = f"refs/remotes/origin/{repo['default_branch']}"
    files = (await git("ls-tree", "-r", "--name-only", head, git_dir=mirror)).splitlines()
    instructions = {}
    for path in INSTRUCTION_FILES:
        text = await git("show", "--no-textconv", f"{head}:{path}", git_dir=mirror, check=False)
        if text:
            instructions[path] = text[:INSTRUCTION_LIMIT]
    author = (issue.get("user") or {}).get("login", "")
    prompt = plan_prompt(ref.full_name, int(issue["number"]), issue.get("title", ""), issue.get("body") or "", files,
                         instructions, answer=state.answer, may_ask=state.plan == "")
    plan = await make_plan(settings.llm_base_url or "", settings.llm_api_key.get_secret_value()
                           if settings.llm_api_key else None, config.models.plan or settings.llm_model or "", prompt)
    log.info("plan written", question=bool(plan.question), mode=config.plan)
    await _post_plan(gh, ref, int(issue["number"]), bot.login,
                     render_plan(plan if state.plan == "" else plan.model_copy(update={"question": None}),
                                 state.trigger, author, config.plan))
    if plan.question and state.plan == "":
        return Planned(replace(state, phase=Phase.WAITING, plan="asked"), True, WAITING_ANSWER.format(author=author))
    agreed = plan_for_agent(plan)
    if config.plan == "approve":
        return Planned(replace(state, phase=Phase.WAITING, plan="proposed", plan_text=agreed), True, WAITING_GO)
    return Planned(replace(state, plan="approved", plan_text=agreed))


async def _post_plan(gh: GitHub, repo: RepoRef, number: int, bot_login: str, body: str) -> None:
    owner, name = repo.owner, repo.name
    comments: Any = (await gh.rest.issues.async_list_comments(owner, name, number, per_page=100)).json()
    existing = find_plan_comment(comments, bot_login)
    if existing is None:
        await gh.rest.issues.async_create_comment(owner, name, number, body=body)
    else:
        await gh.rest.issues.async_update_comment(owner, name, existing, body=body)
