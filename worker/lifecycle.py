"""One issue's way through Mull, and the one call that moves it: every view follows from the stage.

An issue is queued, then worked on, may wait for an answer or ``/mull go``, becomes a draft pull request
(held while the review queue is full), awaits review, and is done when its pull request is merged or closed
or it leaves the line; it may fail, and anything not done may be snoozed. Handlers say what happened
(``await issue.move(Stage.WORKING, ...)``); this module decides what each view shows and writes each one
that changes, once:

- the backlog record (``worker.backlog.store``), which the dashboard and digests read;
- Mull's state label on the issue (``worker.views.labels``);
- the status comment's phase and notes (``worker.views.status_comment``);
- "needs you" notifications, when the move carries an ``Alert`` (``worker.views.needs_you``);
- a refresh of the repo's status positions and dashboard (``worker.backlog.jobs.touch``).

A move the lifecycle does not allow raises ``IllegalMove``: a failed or finished issue runs again only through
a retry, and a failed one never goes straight to review.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from githubkit import GitHub

from bot import keys
from bot.jobs import RepoRef, SolveRequest
from worker.backlog import store as backlogs
from worker.backlog.jobs import start_runs, touch
from worker.backlog.state import Item, ItemState
from worker.jobs.lease_lock import ISSUE_LOCK_WAIT_S, lease_lock
from worker.jobs.services import Services
from worker.ops.redis_reply import reply
from worker.views import labels
from worker.views.needs_you import needs_you
from worker.views.status_comment import Phase, RunState, StatusComment


class Stage(StrEnum):
    QUEUED = "queued"  # labeled, waiting for an agent slot
    WORKING = "working"  # an agent run is going
    WAITING = "waiting"  # the plan asked a question or waits for `/mull go`
    DRAFT = "draft"  # draft pull request under critique or automatic revision
    HELD = "held"  # finished, but the review queue is full: stays a draft
    AWAITING = "awaiting review"  # out of draft, review requested
    SNOOZED = "snoozed"  # aside until it wakes; it returns to where it was
    FAILED = "failed"
    DONE = "done"  # merged, closed, or taken out of the line: no longer Mull's


RUN_STAGES = frozenset({Stage.QUEUED, Stage.WORKING, Stage.WAITING})
PULL_STAGES = frozenset({Stage.DRAFT, Stage.HELD, Stage.AWAITING})
ANYWHERE = frozenset({Stage.FAILED, Stage.DONE, Stage.SNOOZED})  # from any stage but done: things happen

# Where each stage may go without a retry. A retry (the label, `/mull retry`, arq running a job again, a new
# critique of a failed one) may also go from anywhere to queued or working, and from failed or done to a draft.
NEXT: dict[Stage, frozenset[Stage]] = {
    Stage.QUEUED: frozenset({Stage.QUEUED, Stage.WORKING, *ANYWHERE}),
    Stage.WORKING: frozenset({Stage.WORKING, Stage.WAITING, Stage.DRAFT, *ANYWHERE}),
    Stage.WAITING: frozenset({Stage.WAITING, Stage.QUEUED, *ANYWHERE}),
    Stage.DRAFT: PULL_STAGES | ANYWHERE,
    Stage.HELD: PULL_STAGES | ANYWHERE,
    Stage.AWAITING: PULL_STAGES | ANYWHERE,
    Stage.FAILED: ANYWHERE,
    Stage.DONE: frozenset({Stage.DONE}),
}
RETRY_NEXT = frozenset({Stage.QUEUED, Stage.WORKING})
RETRY_AFTER_FAILURE = frozenset({Stage.DRAFT, Stage.HELD})  # a critique that ran again, a PR marked ready

_ITEM_STATES = {Stage.QUEUED: ItemState.QUEUED, Stage.WORKING: ItemState.WORKING, Stage.WAITING: ItemState.WAITING,
                Stage.DRAFT: ItemState.DRAFT, Stage.HELD: ItemState.HELD, Stage.AWAITING: ItemState.AWAITING,
                Stage.SNOOZED: ItemState.SNOOZED, Stage.FAILED: ItemState.FAILED}
_STAGES = {state: stage for stage, state in _ITEM_STATES.items()}
_LABELS = {Stage.QUEUED: labels.QUEUED, Stage.WORKING: labels.WORKING, Stage.WAITING: labels.WAITING}
_PHASES = {Stage.QUEUED: Phase.QUEUED, Stage.WORKING: Phase.WORKING, Stage.WAITING: Phase.WAITING,
           Stage.DRAFT: Phase.PR_OPENED, Stage.HELD: Phase.PR_OPENED, Stage.AWAITING: Phase.PR_OPENED,
           Stage.FAILED: Phase.FAILED}


class IllegalMove(ValueError):
    """A move the lifecycle does not allow: a bug in the caller, or news that came too late."""

    def __init__(self, issue: int, before: Stage, after: Stage) -> None:
        hint = ("a failed or finished issue runs again only through a retry (the label or `/mull retry`)"
                if after in RETRY_NEXT else
                "a failed pull request goes back to draft (a new critique, or a person) before it awaits review"
                if before is Stage.FAILED else f"from {before} it may go to {', '.join(sorted(NEXT[before]))}")
        super().__init__(f"issue #{issue} cannot move from {before} to {after}: {hint}")
        self.issue, self.before, self.after = issue, before, after


def check(issue: int, before: Stage | None, after: Stage, *, retry: bool = False) -> None:
    """Raise IllegalMove unless ``before`` → ``after`` is allowed (``before`` None: Mull had no record)."""
    if before is None or after in NEXT[before]:
        return
    if retry and (after in RETRY_NEXT or (before in (Stage.FAILED, Stage.DONE) and after in RETRY_AFTER_FAILURE)):
        return
    raise IllegalMove(issue, before, after)


@dataclass(frozen=True)
class Alert:
    """News that cannot wait for the digest (``worker.views.needs_you``): a question, a budget, a failure."""

    kind: str
    detail: str
    mention: bool = True


def label_of(stage: Stage | None) -> str | None:
    return _LABELS.get(stage) if stage is not None else None


def phase_of(before: Stage | None, after: Stage) -> Phase | None:
    """What the status comment says after the move; None: it keeps what it says."""
    if after is Stage.FAILED and before in PULL_STAGES | {Stage.FAILED}:
        return None  # the critique failed, not the run: the comment keeps its pull request and notes why
    return _PHASES.get(after)


class IssueLifecycle:
    """Moves one issue of one repository; made per job with its GitHub client and the bot's login."""

    def __init__(self, svc: Services, gh: GitHub, repo: RepoRef, issue: int, bot_login: str) -> None:
        self.svc = svc
        self.gh = gh
        self.repo = repo
        self.issue = issue
        self.bot_login = bot_login
        self.backlog = backlogs.of(svc, repo.repo_id)
        self._status: StatusComment | None = None

    def issue_lock(self) -> AbstractAsyncContextManager[None]:
        """A lease (``worker/jobs/lease_lock.py``) on the issue's status comment and its place in the line: it
        lapses with a killed worker's heartbeat instead of holding the issue for a fixed minute."""
        return lease_lock(self.svc.redis, keys.issue_lock(self.repo.repo_id, self.issue),
                          lease=self.svc.settings.worker_heartbeat, wait=ISSUE_LOCK_WAIT_S, log=self.svc.log)

    async def status(self, *, fresh: bool = False) -> StatusComment:
        """The issue's status comment, loaded once per lifecycle; ``fresh``: loaded again now (under the issue's
        lock, before a write: a job's lifecycle lives for minutes, and others edit the comment meanwhile)."""
        if self._status is None or fresh:
            self._status = StatusComment(self.gh, self.repo, self.issue, self.bot_login, self.svc.redis)
            await self._status.load()
        return self._status

    async def run_state(self) -> RunState:
        """What the status marker remembers about the issue's runs."""
        return (await self.status()).state

    async def stage(self) -> Stage | None:
        """Where the issue is (a snoozed one: where it will wake); None when Mull has no record of it."""
        item = await self.backlog.get(self.issue)
        if item is None:
            return Stage.DONE if await reply(self.svc.redis.hexists(self._done_key, str(self.issue))) else None
        return _underneath(item)

    @property
    def _done_key(self) -> str:
        return keys.backlog(self.repo.repo_id, "done")

    async def move(self, stage: Stage, *, retry: bool = False, run: RunState | None = None, note: str | None = None,
                   critique: str | None = None, alert: Alert | None = None, yield_to_run: bool = False,
                   reviewers: tuple[str, ...] | None = None, wake_at: float | None = None,
                   until_issue: int | None = None, **record: Any) -> Item | None:
        """Move the issue to ``stage`` and bring every view in line; the backlog record after it (None: done).

        ``run`` is the status marker's state to write (a run's new revision, its plan); ``note`` replaces the
        status comment's note and ``critique`` its line of pull-request news; ``record`` holds backlog fields
        (title, pr, effort, reason, extra). ``yield_to_run``: news about a pull request while a new run of the
        issue is queued or going changes nothing (the run leads). ``reviewers``: an awaiting pull request takes
        a review slot with them. ``wake_at``/``until_issue``: when a snoozed one wakes.
        """
        if stage is Stage.QUEUED:
            raise ValueError("an issue is queued with a run to make: call queue(request), not move(QUEUED)")
        # The whole move holds the issue's lock, from reading where the issue is to recording where it went: news
        # of a pull request read as a draft must not land after a retry queued a new run meanwhile.
        async with self.issue_lock():
            item = await self.backlog.get(self.issue)
            before = await self.stage()
            if yield_to_run and before in (Stage.QUEUED, Stage.WORKING) and await self.backlog.is_pending(self.issue):
                return item
            check(self.issue, before, stage, retry=retry)
            await self._show_status(before, stage, run, note, critique)
            if stage is not Stage.SNOOZED and (label_of(before) != label_of(stage) or
                                               (before is None and stage is Stage.FAILED)):
                await labels.move(self.gh, self.repo, self.issue, to=label_of(stage))
            moved = await self._record(stage, item, reviewers, wake_at, until_issue, record)
        if alert is not None and moved is not None:
            await needs_you(self.svc, self.gh, self.repo, moved, alert.kind, alert.detail, mention=alert.mention)
        await touch(self.svc, self.repo)
        return moved

    async def queue(self, request: SolveRequest, *, retry: bool, title: str = "", asked_by: str | None = None,
                    **run_changes: Any) -> bool:
        """Put the issue's run in the repo's line (``request``); False when it is already queued or running, or
        when the delivery ``asked_by`` queued it before (its handling retried after a worker died).

        ``run_changes`` go into the status marker with the queued phase (a plan approved, an answer).
        """
        async with self.issue_lock():
            check(self.issue, await self.stage(), Stage.QUEUED, retry=retry)
            if not await self.backlog.enqueue(request, title=title, asked_by=asked_by):
                return False
            await reply(self.svc.redis.hdel(self._done_key, str(self.issue)))
            item = await self.backlog.get(self.issue) or Item(self.issue)
            state = (await self.status(fresh=True)).state
            await self._write_status(replace(state, phase=Phase.QUEUED, requested_by=request.requested_by,
                                             labeled_at=item.labeled_at, **run_changes), None)
        await labels.move(self.gh, self.repo, self.issue, to=labels.QUEUED)
        await start_runs(self.svc, self.backlog, self.repo)
        await touch(self.svc, self.repo)
        return True

    async def note(self, critique: str) -> None:
        """News of the pull request (a critique, a revision) on the status comment, when the issue has one."""
        async with self.issue_lock():
            status = await self.status(fresh=True)
            if status.comment_id is not None:
                await status.write(replace(status.state, critique=critique))

    async def wake(self) -> Item | None:
        """A snooze ends: back to where it was (the caller offers a finished PR again, starts a queued run)."""
        woken = await self.backlog.wake(self.issue)
        await touch(self.svc, self.repo)
        return woken

    # -- the views ------------------------------------------------------------------------------------------

    async def _show_status(self, before: Stage | None, stage: Stage, run: RunState | None, note: str | None,
                           critique: str | None) -> None:
        phase = phase_of(before, stage)
        if stage is Stage.DONE and note is not None:
            phase = Phase.FAILED  # it left the line before it was finished: the comment says it stopped
        if run is None and note is None and critique is None and (
                phase is None or (before is not None and phase is _PHASES.get(before))):
            return  # what the comment says does not change (a draft leaving for review: the refresh says so)
        creates = stage in RUN_STAGES or (before in RUN_STAGES and stage is not Stage.DONE) or \
            (before is None and stage is Stage.FAILED)
        status = await self.status(fresh=True)
        if status.comment_id is None and not creates:
            return  # news about a pull request or a closed issue never starts a status comment
        # The queue line is the refresh's (worker/backlog/refresh.py), which remembers what it showed: a run's
        # state, read when its job began, must not put back a line the refresh has replaced since.
        state = status.state if run is None else replace(run, queue=status.state.queue)
        if phase is not None and not (stage is Stage.DONE and state.phase is Phase.PR_OPENED):
            state = replace(state, phase=phase)
            if phase in (Phase.WORKING, Phase.FAILED):
                state = replace(state, queue="")
        if critique is not None:
            state = replace(state, critique=critique)
        if note is None and state == status.state:
            return
        await self._write_status(state, note)

    async def _write_status(self, state: RunState, note: str | None) -> None:
        await (await self.status()).write(state, note)

    async def _record(self, stage: Stage, item: Item | None, reviewers: tuple[str, ...] | None,
                      wake_at: float | None, until_issue: int | None, record: dict[str, Any]) -> Item | None:
        backlog = self.backlog
        if stage is Stage.DONE:
            await backlog.forget(self.issue)
            await reply(self.svc.redis.hset(self._done_key, str(self.issue), str(backlog.clock())))
            return None
        await reply(self.svc.redis.hdel(self._done_key, str(self.issue)))  # back in Mull's hands
        if stage is Stage.SNOOZED:
            snoozed = await backlog.snooze(self.issue, wake_at, until_issue)
            return await backlog.move(self.issue, ItemState.SNOOZED, **record) if record else snoozed
        if stage is Stage.HELD and not (item is not None and item.state is ItemState.SNOOZED):
            base = item or Item(issue=self.issue, labeled_at=backlog.clock())
            return await backlog.hold(replace(base, **{"reason": "", **record}))
        if stage is Stage.AWAITING and reviewers is not None:  # it takes a review slot, with each reviewer
            released = await backlog.release_to(self.issue, self.repo.installation_id, reviewers)
            if not record:
                return released
        return await backlog.move(self.issue, _ITEM_STATES[stage], **record)


def _underneath(item: Item) -> Stage:
    if item.state is ItemState.SNOOZED:
        return _STAGES.get(ItemState(item.extra.get("before", ItemState.QUEUED.value)), Stage.QUEUED)
    return _STAGES[item.state]


def of(svc: Services, gh: GitHub, repo: RepoRef, issue: int, bot_login: str) -> IssueLifecycle:
    return IssueLifecycle(svc, gh, repo, issue, bot_login)


async def run_ended(svc: Services, repo: RepoRef, issue: int) -> None:
    """An agent run of the issue ended (whatever its outcome): its slot in the line goes to the next one."""
    backlog = backlogs.of(svc, repo.repo_id)
    await backlog.run_ended(issue)
    await start_runs(svc, backlog, repo)
    await touch(svc, repo)
