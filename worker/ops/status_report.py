"""``mull status``: what is queued, what runs, which workers are alive, and what failed or waits to be tried
again after a failure, each with what to do about it."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict

from arq import constants as arq_keys

from bot import keys
from bot.jobs import QUEUE
from bot.settings import MullSettings
from worker.backlog import budget
from worker.backlog.store import Backlog, known_repos
from worker.jobs import failed_work
from worker.jobs.queue import connect
from worker.ops import spend
from worker.ops.redis_reply import reply
from worker.webhooks import dead_letters

DEAD_LETTERS_SHOWN = 5
FAILURES_SHOWN = 10


async def collect(redis_url: str, settings: MullSettings | None = None) -> dict:
    pool = await connect(redis_url)
    try:
        now_ms = time.time() * 1000
        entries = await pool.zrange(QUEUE, 0, -1, withscores=True)
        queued, deferred, running = [], [], []
        for raw_id, score in entries:
            job_id = raw_id.decode()
            if await pool.exists(arq_keys.in_progress_key_prefix + job_id):
                running.append(job_id)
            elif score > now_ms:
                deferred.append(job_id)
            else:
                queued.append(job_id)
        workers = []
        for raw in await reply(pool.smembers(keys.WORKERS)):
            worker_id = raw.decode()
            alive = bool(await pool.exists(keys.worker_heartbeat(worker_id)))
            jobs = sorted(j.decode() for j in await reply(pool.smembers(keys.worker_jobs(worker_id))))
            workers.append({"id": worker_id, "alive": alive, "jobs": jobs})
        backlog: dict[str, list[int]] = {}
        for raw in await reply(pool.smembers(keys.AWAITING_REVIEW)):
            repo, _, pr = raw.decode().rpartition("#")
            backlog.setdefault(repo, []).append(int(pr))
        lines = {}
        for repo_id, _installation, repo in await known_repos(pool):
            line = Backlog(pool, repo_id)
            states = Counter(item.state.value for item in await line.items())
            lines[repo] = {"states": dict(sorted(states.items())), "queued": await line.waiting(),
                           "held": await line.held()}
        failures = [json.loads(x) for x in await reply(pool.lrange(keys.FAILURES, 0, FAILURES_SHOWN - 1))]
        retrying = await failed_work.retrying(pool, set(deferred) | set(queued) | set(running))
        count, letters, dropped = await dead_letters.newest(pool, DEAD_LETTERS_SHOWN)
        dead = {"count": count, "dropped_at_cap": dropped, "newest": [letter.summary() for letter in letters]}
        installs = {k.decode(): json.loads(v) for k, v in (await reply(pool.hgetall(keys.INSTALLATIONS))).items()}
        month = spend.month_of()
        for installation_id, install in installs.items():
            used = await spend.of_month(pool, int(installation_id), month)
            install["month"] = {"month": month, **asdict(used), "dollars": used.dollars, "text": used.describe()}
            if settings is not None:
                allowance = await budget.state(pool, settings, int(installation_id))
                install["budget"] = {"text": allowance.budget.describe(), "limited": allowance.budget.limited,
                                     "spent": allowance.exhausted}
        return {"queued": queued, "deferred": deferred, "running": running, "workers": workers,
                "awaiting_review": {repo: sorted(prs) for repo, prs in sorted(backlog.items())}, "backlogs": lines,
                "retrying": retrying, "recent_failures": failures, "dead_letters": dead, "installations": installs}
    finally:
        await pool.aclose()


async def print_status(redis_url: str, as_json: bool = False, settings: MullSettings | None = None) -> int:
    report = await collect(redis_url, settings)
    if as_json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"queued: {len(report['queued'])}  deferred: {len(report['deferred'])}  running: {len(report['running'])}")
    for job_id in report["running"]:
        print(f"  running  {job_id}")
    for job_id in report["queued"]:
        print(f"  queued   {job_id}")
    print(f"workers: {sum(w['alive'] for w in report['workers'])} alive")
    for worker in report["workers"]:
        print(f"  {worker['id'][:12]} {'alive' if worker['alive'] else 'dead'} {', '.join(worker['jobs'])}")
    print(f"awaiting review: {sum(len(prs) for prs in report['awaiting_review'].values())}")
    for repo, prs in report["awaiting_review"].items():
        print(f"  {repo}: " + ", ".join(f"#{pr}" for pr in prs))
    for repo, line in report["backlogs"].items():
        states = ", ".join(f"{n} {state}" for state, n in line["states"].items()) or "empty"
        print(f"  backlog {repo}: {states}; next to run: "
              + (", ".join(f"#{n}" for n in line["queued"][:5]) or "none")
              + "; next for review: " + (", ".join(f"#{n}" for n in line["held"][:5]) or "none"))
    print(f"installations: {len(report['installations'])}"
          + "".join(f"\n  {i} {v['account']}{' (suspended)' if v['suspended'] else ''}: {_month(v)}"
                    for i, v in report["installations"].items()))
    print(f"retrying after a failure: {len(report['retrying'])}")
    for note in report["retrying"]:
        wait = max(0, round(note.get("next_at", 0) - time.time()))
        print(f"  {note['job']} {_where(note)}: try {note['try']} of {note['max_tries']} failed ({note['reason']}); "
              f"next try in {wait} s, by itself; if every try fails: {note['fix']}")
    print(f"failed: {len(report['recent_failures'])}" + (" (newest first)" if report["recent_failures"] else ""))
    for failure in report["recent_failures"]:
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(failure["at"]))
        job = f" ({failure['job']})" if failure.get("job") else ""
        print(f"  {when} {failure['stage']} {_where(failure)}{job}: {failure['reason']}; "
              f"to try again: {failure.get('fix') or 'see the status comment on ' + _where(failure)}")
    dead = report["dead_letters"]
    print(f"dead letters: {dead['count']}" + (" (retry with `mull retry-deliveries --all` or GUID...)"
                                              if dead["count"] else "")
          + (f"; {dead['dropped_at_cap']} dropped at the cap" if dead["dropped_at_cap"] else ""))
    for letter in dead["newest"]:
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(letter["failed_at"]))
        retried = f" (retried {letter['retries']}x)" if letter["retries"] else ""
        print(f"  {when} {letter['guid']} {letter['event']}{retried}: {letter['error']}")
    return 0


def _where(entry: dict) -> str:
    return f"{entry['repo']}#{entry['number']}" if entry.get("number") else entry.get("repo") or "?"


def _month(install: dict) -> str:
    """This month's model use and the budget it counts against."""
    used = install["month"]
    text = f"{used['month']} {used['text']}"
    allowance = install.get("budget")
    if allowance and allowance["limited"]:
        text += f"; budget {allowance['text']}" + (", spent: new runs wait" if allowance["spent"] else "")
    return text
