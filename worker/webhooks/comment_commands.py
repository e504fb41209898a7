"""``/mull`` commands in comments: parse, check the sender, acknowledge, act, answer.

Every command gets 👀 when Mull picks it up, then 🚀 when done or 😕 with a one-line reply that says what
was wrong and shows a correct example. Only people with write or triage access may command; the bot's
own comments (and other bots') never run anything. Which verbs exist, who may use them and which function
here acts on each is ``bot.commands.VERBS``: the one verb table, also read by the parser and the help.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from arq.jobs import JobStatus

from bot import commands, keys
from bot.jobs import (
    CritiqueRequest,
    ReviseRequest,
    enqueue_critique,
    enqueue_revise,
    solve_job_id,
)
from bot.snooze_time import SnoozeError, parse_snooze
from worker import lifecycle
from worker.backlog import snooze
from worker.backlog import store as backlogs
from worker.backlog.jobs import start_runs
from worker.backlog.pull_state import PullState
from worker.backlog.state import ItemState
from worker.github.pull_ownership import mull_issue
from worker.jobs import queue as job_queue
from worker.jobs.services import Services
from worker.lifecycle import Stage
from worker.repo_config.settings import config_for, quiet_seconds
from worker.views import labels
from worker.views.status_comment import Phase, StatusComment
from worker.webhooks import trigger
from worker.webhooks.base_command import do_base  # noqa: F401  (the verb table names it: `_handlers`)
from worker.webhooks.command_types import Outcome, Target
from worker.webhooks.events import TRIGGER_ROLES, Event, once, permission
from worker.webhooks.installations import request_abort

STOP_FLAG_TTL = 3600
MENTION_LIMIT = 4000  # characters of a mentioning comment the agent gets as the request


Handler = Callable[[Services, Event, Target, commands.Command], Awaitable[Outcome]]


async def on_comment(svc: Services, event: Event) -> str:
    comment = event.payload.get("comment") or {}
    if event.sender_is_bot or (comment.get("user") or {}).get("type") == "Bot":
        return "bot comment"
    body = comment.get("body") or ""
    if event.payload.get("action") == "edited":
        old = ((event.payload.get("changes") or {}).get("body") or {}).get("from")
        result = commands.new_command(old, body)
    else:
        result = commands.parse(body)
    if result.command is None:
        if _mentioned(event, body):
            return await on_mention(svc, event, await _target(event), body)
        if event.payload.get("action") != "created":
            return "no command"
        target = await _target(event)
        if await snooze.wake_up(svc, event.gh, event.ref, target.number, f"comment by @{event.sender}"):
            return "woke on activity"
        if event.delivery.event == "issue_comment":
            return await answer_if_waiting(svc, event)
        return "no command"
    target = await _target(event)
    verb = result.command.verb
    turned_away = await _admit(svc, event, target, lambda role: commands.allowed(verb, role), "give Mull commands")
    if turned_away:
        return turned_away
    if result.error:
        await _react(event, "confused")
        extra = f"\n\n{commands.HELP_TEXT}" if result.unknown else ""
        await _reply(event, target, f"@{event.sender} {result.error}{extra}")
        return "bad command"
    outcome = await HANDLERS[result.command.verb](svc, event, target, result.command)
    await _react(event, "rocket" if outcome.ok else "confused")
    if outcome.reply:
        await _reply(event, target, f"@{event.sender} {outcome.reply}")
    event.log.info("command handled", verb=result.command.verb, ok=outcome.ok)
    return f"{result.command.verb}: {'ok' if outcome.ok else 'refused'}"


async def _admit(svc: Services, event: Event, target: Target, may: Callable[[str], bool], asking: str) -> str:
    """Let a command or mention through once: "" (after the 👀 reaction) when the sender's role ``may`` and this
    delivery was not handled before; else "refused" (told once why) or "already handled"."""
    role = await permission(event.gh, event.ref, event.sender)
    if not may(role):
        if await once(svc, keys.once(f"cmd-refusal:{event.delivery.guid}")):
            await _reply(event, target, f"@{event.sender} only people with write or triage access to this "
                                        f"repository can {asking} (yours: {role}).")
        return "refused"
    if not await once(svc, keys.once(f"cmd:{event.delivery.guid}")):
        return "already handled"
    await _react(event, "eyes")
    return ""


def _mentioned(event: Event, body: str) -> bool:
    slug = event.bot.slug
    if event.payload.get("action") == "edited":
        return commands.new_mention(((event.payload.get("changes") or {}).get("body") or {}).get("from"), body, slug)
    return commands.mentions(body, slug)


async def on_mention(svc: Services, event: Event, target: Target, body: str) -> str:
    """``@<slug>`` in a comment: on an issue it starts a run with the comment as the request; on a Mull pull
    request it asks for a revision, debounced like a review. Same checks, reactions and replies as a command."""
    turned_away = await _admit(svc, event, target, lambda role: role in commands.COMMANDERS, "ask Mull for work")
    if turned_away:
        return "mention refused" if turned_away == "refused" else turned_away
    request = body.strip()[:MENTION_LIMIT]
    if target.is_pull:
        outcome = await _mention_on_pull(svc, event, target, request)
    elif (event.payload.get("issue") or {}).get("state") == "closed":
        outcome = Outcome(False, f"#{target.number} is closed; reopen it to ask Mull for work.")
    elif await trigger.queue_run(svc, event, target.number, event.sender,
                                 title=(event.payload.get("issue") or {}).get("title") or "", mention=request):
        outcome = Outcome(True)
    else:
        outcome = Outcome(False, f"a run for #{target.number} is already queued or running; "
                                 "`/mull stop` it first to start over.")
    await _react(event, "rocket" if outcome.ok else "confused")
    if outcome.reply:
        await _reply(event, target, f"@{event.sender} {outcome.reply}")
    event.log.info("mention handled", ok=outcome.ok, pull=target.is_pull)
    return f"mention: {'ok' if outcome.ok else 'refused'}"


async def _mention_on_pull(svc: Services, event: Event, target: Target, request: str) -> Outcome:
    if target.issue is None:
        return Outcome(False, f"Mull revises only the pull requests it opened; mention @{event.bot.slug} on an "
                              "issue to start work on it.")
    config = await config_for(svc, event.gh, event.ref)
    pull_state = PullState(svc.redis, event.repo_id, target.number)
    await pull_state.add_request(f"@{event.sender} asks:\n{request}")
    await pull_state.touch_review()
    await snooze.wake_up(svc, event.gh, event.ref, target.number, f"mention by @{event.sender}")
    await enqueue_revise(svc.redis, ReviseRequest(
        installation_id=event.installation_id, repo_id=event.repo_id, repo=event.repo_name, pr=target.number,
        reason="review", notes="", requested_by=event.sender), "review", defer_by=quiet_seconds(config))
    return Outcome(True)


async def _target(event: Event) -> Target:
    issue = event.payload.get("issue")
    pull = event.payload.get("pull_request")
    if issue is not None and not issue.get("pull_request"):
        return Target(int(issue["number"]), False, int(issue["number"]))
    number = int((pull or issue or {})["number"])
    if pull is None:
        owner, name = event.owner_name()
        pull = (await event.gh.rest.pulls.async_get(owner, name, number)).json()
    return Target(number, True, mull_issue(pull or {}, event.bot.login))


async def _react(event: Event, content: str) -> None:
    owner, name = event.owner_name()
    comment_id = int(event.payload["comment"]["id"])
    if event.delivery.event == "pull_request_review_comment":
        await event.gh.rest.reactions.async_create_for_pull_request_review_comment(
            owner, name, comment_id, content=content)  # type: ignore[call-overload]
    else:
        await event.gh.rest.reactions.async_create_for_issue_comment(
            owner, name, comment_id, content=content)  # type: ignore[call-overload]


async def _reply(event: Event, target: Target, text: str) -> None:
    owner, name = event.owner_name()
    await event.gh.rest.issues.async_create_comment(owner, name, target.number, body=text)


# -- verbs ---------------------------------------------------------------------------------------------


async def do_help(svc: Services, event: Event, target: Target, command: commands.Command) -> Outcome:
    return Outcome(True, "\n\n" + commands.HELP_TEXT)


async def do_retry(svc: Services, event: Event, target: Target, command: commands.Command) -> Outcome:
    if target.issue is None:
        return Outcome(False, "`/mull retry` works on an issue, or on a pull request Mull opened for one.")
    if not await trigger.queue_run(svc, event, target.issue, event.sender):
        return Outcome(False, f"a run for #{target.issue} is already queued or running; "
                              "`/mull stop` it first to start over.")
    return Outcome(True)


async def do_stop(svc: Services, event: Event, target: Target, command: commands.Command) -> Outcome:
    if target.issue is None:
        return Outcome(False, "`/mull stop` works on an issue, or on a pull request Mull opened for one.")
    backlog = backlogs.of(svc, event.repo_id)
    if await backlog.unqueue(target.issue):  # still in line: it leaves before it started
        await _stopped_before_start(svc, event, target.issue)
        return Outcome(True)
    job_id = solve_job_id(event.repo_id, target.issue)
    job = job_queue.job(job_id, svc.redis)
    state = await job.status()
    if state not in trigger.ACTIVE:
        issue_run = lifecycle.of(svc, event.gh, event.ref, target.issue, event.bot.login)
        current = await issue_run.run_state()
        if current.phase is Phase.WAITING:  # a plan waiting for an answer or for `/mull go`
            await issue_run.move(Stage.FAILED, run=replace(current, plan=""), note=f"**Stopped** by @{event.sender}.",
                                 reason=f"stopped by @{event.sender}")
            return Outcome(True)
        return Outcome(False, f"nothing is queued or running for #{target.issue}.")
    await svc.redis.set(keys.stop_flag(event.repo_id, job_id), event.sender, ex=STOP_FLAG_TTL)
    await request_abort(job)
    if state is JobStatus.in_progress:  # the run commits and pushes what it has, then says it was stopped
        return Outcome(True)
    await backlog.run_ended(target.issue)  # an aborted job that never started gives its slot back here
    await _stopped_before_start(svc, event, target.issue)
    await start_runs(svc, backlog, event.ref)
    return Outcome(True)


async def _stopped_before_start(svc: Services, event: Event, issue: int) -> None:
    await lifecycle.of(svc, event.gh, event.ref, issue, event.bot.login).move(
        Stage.FAILED, note=f"**Stopped** by @{event.sender} before it started.", reason=f"stopped by @{event.sender}")


async def do_go(svc: Services, event: Event, target: Target, command: commands.Command) -> Outcome:
    if target.is_pull or target.issue is None:
        return Outcome(False, "`/mull go` works on an issue whose plan waits for approval.")
    status = StatusComment(event.gh, event.ref, target.issue, event.bot.login, svc.redis)
    current = await status.load()
    if current.phase is not Phase.WAITING or current.plan != "proposed":
        return Outcome(False, f"no plan on #{target.issue} is waiting for `/mull go`.")
    queued = await trigger.queue_run(svc, event, target.issue, event.sender, trigger=current.trigger,
                                     plan="approved")
    return Outcome(queued, None if queued else f"a run for #{target.issue} is already queued or running.")


async def answer_if_waiting(svc: Services, event: Event) -> str:
    """A plain comment by the issue's author (or a maintainer) answers the plan's question."""
    issue = event.payload.get("issue") or {}
    if issue.get("pull_request") or labels.WAITING not in {x.get("name") for x in issue.get("labels") or []}:
        return "no command"
    number = int(issue["number"])
    status = StatusComment(event.gh, event.ref, number, event.bot.login, svc.redis)
    current = await status.load()
    if current.phase is not Phase.WAITING or current.plan != "asked":
        return "no question waiting"
    author = (issue.get("user") or {}).get("login")
    if event.sender != author and await permission(event.gh, event.ref, event.sender) not in TRIGGER_ROLES:
        return "not the author"
    if not await once(svc, keys.once(f"answer:{event.delivery.guid}")):
        return "already handled"
    await _react(event, "eyes")
    body = (event.payload.get("comment") or {}).get("body") or ""
    await trigger.queue_run(svc, event, number, event.sender, trigger=current.trigger, plan="answered",
                            answer=body[:4000])
    return "answer received"


async def do_snooze(svc: Services, event: Event, target: Target, command: commands.Command) -> Outcome:
    config = await config_for(svc, event.gh, event.ref)
    try:
        wake = parse_snooze(command.args, datetime.now(UTC), config.timezone)
    except SnoozeError as exc:
        return Outcome(False, str(exc))
    reply = await snooze.snooze(svc, event.gh, event.ref, target.number, wake, event.sender)
    return Outcome(True, f"#{target.number} is {reply}")


async def do_unsnooze(svc: Services, event: Event, target: Target, command: commands.Command) -> Outcome:
    if await snooze.wake_up(svc, event.gh, event.ref, target.number, "unsnooze"):
        return Outcome(True)
    return Outcome(False, f"#{target.number} is not snoozed.")


async def do_queue(svc: Services, event: Event, target: Target, command: commands.Command) -> Outcome:
    if target.issue is None:
        return Outcome(False, "`/mull queue` works on an issue, or on a pull request Mull opened for one.")
    backlog = backlogs.of(svc, event.repo_id)
    dashboard = await backlog.dashboard()
    see = f" The whole queue is on #{dashboard}." if dashboard else ""
    if await trigger.run_status(svc, event.repo_id, target.issue) is JobStatus.in_progress:
        return Outcome(True, f"the agent is working on #{target.issue} now.{see}")
    ahead = await backlog.ahead_of(target.issue)
    if ahead is not None:
        return Outcome(True, f"#{target.issue} is queued with {ahead} run{'s' if ahead != 1 else ''} ahead of it."
                             + see)
    item = await backlog.get(target.issue)
    if item is not None and item.state is ItemState.HELD:
        held = await backlog.held()
        place = held.index(target.issue) if target.issue in held else 0
        return Outcome(True, f"#{item.pr} is finished and waits for a review slot, {place} ahead of it.{see}")
    if item is not None and item.state is ItemState.AWAITING:
        return Outcome(True, f"#{item.pr} awaits review.{see}")
    if item is not None and item.state is ItemState.SNOOZED:
        return Outcome(True, f"#{target.number} is snoozed.{see}")
    return Outcome(True, f"#{target.issue} is not in the queue.{see}")


async def do_revise(svc: Services, event: Event, target: Target, command: commands.Command) -> Outcome:
    if not target.is_pull or target.issue is None:
        return Outcome(False, "`/mull revise` works on a pull request Mull opened.")
    notes = f"@{event.sender} asks: {command.args}" if command.args else "Look over the pull request again."
    return Outcome(await enqueue_revise(svc.redis, ReviseRequest(
        installation_id=event.installation_id, repo_id=event.repo_id, repo=event.repo_name, pr=target.number,
        reason="command", notes=notes, requested_by=event.sender), f"command-{event.delivery.guid}"))


async def do_critique(svc: Services, event: Event, target: Target, command: commands.Command) -> Outcome:
    if not target.is_pull or target.issue is None:
        return Outcome(False, "`/mull critique` works on a pull request Mull opened.")
    owner, name = event.owner_name()
    pull: Any = (await event.gh.rest.pulls.async_get(owner, name, target.number)).json()
    return Outcome(await enqueue_critique(svc.redis, CritiqueRequest(
        installation_id=event.installation_id, repo_id=event.repo_id, repo=event.repo_name, pr=target.number,
        head_sha=pull["head"]["sha"], force=True), again=event.delivery.guid))


def _handlers() -> dict[str, Handler]:
    """Each verb's handler, found here by the name the verb table gives it."""
    found: dict[str, Handler] = {}
    for verb in commands.VERBS.values():
        handler = globals().get(verb.handler)
        if not callable(handler):
            raise ImportError(f"bot/commands.py says worker/webhooks/comment_commands.py:{verb.handler} acts on "
                              f"`/mull {verb.name}`, but there is no such function")
        found[verb.name] = handler
    return found


HANDLERS: dict[str, Handler] = _handlers()
