"""Revisions and critiques wait while their installation's monthly model budget is spent, as queued runs do.

A queued run simply does not start then (``worker/backlog/jobs.py``, ``start_runs``). A revision or a critique
is a job of its own, started by a review, a verdict or a new head, so it checks for itself before it uses the
model: it hands back arq's try (waiting is not failing), says so once on the issue's status comment and to the
person behind the issue, and looks again every HOLD_RECHECK_S, so it runs once the month turns or the operator
raises the budget.
"""

from __future__ import annotations

from bot import keys
from worker.backlog import budget
from worker.jobs.boundary import JobRun
from worker.jobs.queue import wait_untried
from worker.lifecycle import IssueLifecycle
from worker.views.needs_you import ONCE_TTL, needs_you
from worker.webhooks.events import once

HOLD_RECHECK_S = 300.0


async def hold_while_spent(job: JobRun, issue_run: IssueLifecycle, what: str) -> None:
    """Return when the installation's month has budget left; else raise arq's Retry, after telling people the
    first time this job waits in this month. ``what``: the job in the status comment ("The revision")."""
    svc = job.svc
    allowance = await budget.state(svc.redis, svc.settings, job.installation_id)
    if not allowance.exhausted:
        return
    repo = issue_run.repo
    if await once(svc, keys.repo_once(repo.repo_id, f"budget-hold:{job.job_id}:{allowance.month}"), ttl=ONCE_TTL):
        await issue_run.note(allowance.held_news(what))
        item = await issue_run.backlog.get(issue_run.issue)
        if item is not None:
            await needs_you(svc, job.gh, repo, item, "budget", allowance.ping())
        job.log.info("waits for the installation's budget", budget=allowance.budget.describe(),
                     spent=allowance.spent.describe())
    await wait_untried(svc.redis, job.job_id, HOLD_RECHECK_S)
