"""``/mull base <branch>``: the branch an issue's run starts from and its pull request targets.

The choice is kept with the issue's backlog record and read when the run starts, so a later ``/mull base``
before then changes it; once a run started or a pull request exists it applies to the next run, and the
reply says so. A name that is not a valid branch name, or a branch the repository does not have, is refused
with the reason and nothing changes.
"""

from __future__ import annotations

from arq.jobs import JobStatus

from bot import commands
from worker.backlog import store as backlogs
from worker.github import base_branch
from worker.jobs.services import Services
from worker.webhooks import trigger
from worker.webhooks.command_types import Outcome, Target
from worker.webhooks.events import Event


async def do_base(svc: Services, event: Event, target: Target, command: commands.Command) -> Outcome:
    if target.issue is None:
        return Outcome(False, "`/mull base` works on an issue, or on a pull request Mull opened for one.")
    try:
        branch = await base_branch.usable(event.gh, event.ref, command.args)
    except base_branch.BadBase as exc:
        return Outcome(False, str(exc))
    backlog = backlogs.of(svc, event.repo_id)
    await backlog.set_base(target.issue, branch, "command")
    item = await backlog.get(target.issue)
    pr = target.number if target.is_pull else item.pr if item is not None else None
    name = base_branch.shown(branch)
    if pr is not None:
        return Outcome(True, f"#{pr} already exists and keeps its base until the next run on #{target.issue}, "
                             f"which will start from `{name}` and target it (`/mull retry` starts one).")
    if await trigger.run_status(svc, event.repo_id, target.issue) is JobStatus.in_progress:
        return Outcome(True, f"the run on #{target.issue} has already started; the next one will start from "
                             f"`{name}` (`/mull retry` starts one).")
    return Outcome(True, f"#{target.issue} will start from `{name}`, and its pull request will target it.")
