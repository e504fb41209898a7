"""Running the plan stage inside an issue's run, and resuming it on ``/mull go`` or the author's answer."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from githubkit import GitHub

from bot.jobs import RepoRef
from bot.session_store import Session
from bot.settings import MullSettings
from worker.agent import model_stack
from worker.agent.prompt import INSTRUCTION_FILES, INSTRUCTION_LIMIT, with_request
from worker.agent.run_outcome import Ended, RunOutcome, Usage
from worker.github.app import BotIdentity, GitHubApp
from worker.jobs.branch_work import new_run_id
from worker.jobs.plan import Plan, find_plan_comment, make_plan, plan_for_agent, plan_prompt, render_plan
from worker.jobs.services import Services
from worker.ops import spend
from worker.repo_config import RepoConfig
from worker.sessions import record as sessions
from worker.trees.repo_cache import RepoCache, git
from worker.views.status_comment import Phase, RunState

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
    prompt = plan_prompt(ref.full_name, int(issue["number"]), issue.get("title", ""),
                         with_request(issue.get("body") or "", state.mention, state.requested_by), files,
                         instructions, answer=state.answer, may_ask=state.plan == "")
    model = config.models.plan or settings.llm_model or ""

    async def used(usage: Usage) -> None:
        await spend.record(svc.redis, settings.prices, installation_id=ref.installation_id, repo_id=ref.repo_id,
                           issue=int(issue["number"]), model=model, input_tokens=usage.input_tokens,
                           output_tokens=usage.output_tokens)

    ended: list[RunOutcome[Plan]] = []
    run_id, started = new_run_id("plan", ref.repo_id, f"issue-{issue['number']}"), time.time()
    await model_stack.load()  # off the event loop (worker/agent/model_stack.py)
    try:
        plan = await make_plan(settings.llm_base_url or "", settings.llm_api_key.get_secret_value()
                               if settings.llm_api_key else None, model, prompt, ended=ended.append, used=used)
    finally:  # where every plan run ends, written or not: its session is kept
        kept = await _keep_session(svc, ref, int(issue["number"]), run_id, started, ended, log) if ended else None
    log.info("plan written", question=bool(plan.question), mode=config.plan)
    link = sessions.markdown_link(settings, kept, "How the plan was made")
    await _post_plan(gh, ref, int(issue["number"]), bot.login,
                     render_plan(plan if state.plan == "" else plan.model_copy(update={"question": None}),
                                 state.trigger, author, config.plan) + (f"\n\n{link}" if link else ""))
    if plan.question and state.plan == "":
        return Planned(replace(state, phase=Phase.WAITING, plan="asked"), True, WAITING_ANSWER.format(author=author))
    agreed = plan_for_agent(plan)
    if config.plan == "approve":
        return Planned(replace(state, phase=Phase.WAITING, plan="proposed", plan_text=agreed), True, WAITING_GO)
    return Planned(replace(state, plan="approved", plan_text=agreed))


async def _keep_session(svc: Services, ref: RepoRef, number: int, run_id: str, started: float,
                        ended: list[RunOutcome[Plan]], log: Any) -> str | None:
    from worker.sessions.message_steps import steps as message_steps  # loads pydantic-ai: only after a run

    outcome = ended[0]
    line = (f"stopped: {outcome.reason}: {outcome.detail}" if isinstance(outcome, Ended)
            else "plan asks a question" if outcome.output.question else "plan written")
    found = message_steps(outcome.messages)
    return await sessions.keep(svc, Session(
        run_id=run_id, stage="plan", repo_id=ref.repo_id, repo=ref.full_name, subject=f"issue #{number}",
        started=started, seconds=round(time.time() - started, 1), outcome=line, steps=tuple(found),
        input_tokens=sum(s.input_tokens or 0 for s in found), output_tokens=sum(s.output_tokens or 0 for s in found)),
        log)


async def _post_plan(gh: GitHub, repo: RepoRef, number: int, bot_login: str, body: str) -> None:
    owner, name = repo.owner, repo.name
    comments: Any = (await gh.rest.issues.async_list_comments(owner, name, number, per_page=100)).json()
    existing = find_plan_comment(comments, bot_login)
    if existing is None:
        await gh.rest.issues.async_create_comment(owner, name, number, body=body)
    else:
        await gh.rest.issues.async_update_comment(owner, name, existing, body=body)
