"""Chaos end to end: 20 issues labeled over time while workers are SIGKILLed and Redis is killed and restarted.

Real `mull web` and three `mull worker` processes on a private redis-server (append-only, fsync always), the
GitHub double and the scripted model. A seeded RNG (``MULL_CHAOS_SEED``) places five worker kills (each
replaced by a fresh worker) and three Redis kill -9 + restarts among the labels. Afterwards every issue has
exactly one pull request on one branch ``mull/issue-N``, or one clear failure; Mull never posted the same
comment twice; the agent ran once per issue, except where a kill interrupted the run before its result was
kept; and no dead letter is left over. A one-line summary gives the counts.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from doubles.e2e import MAINTAINER, cluster_env, settle, status_comments, wait_for
from doubles.fixtures import REPO
from doubles.mull_process import MULL, MullCluster, MullProcess
from doubles.redis_process import RedisProcess

from worker.views.dashboard import TITLE as DASHBOARD_TITLE

pytestmark = pytest.mark.e2e

SEED = int(os.environ.get("MULL_CHAOS_SEED", "1128"))
ISSUES = 20
WORKERS = 3
WORKER_KILLS = 5
REDIS_RESTARTS = 3
LABEL_EVERY_S = 1.3
FAILING = frozenset({6, 13})  # issues whose agent changes nothing: each must end in one clear failure

AGENT, IDLE, CRITIQUE = "CHAOS-AGENT", "CHAOS-IDLE", "CHAOS-CRITIQUE"
MARKER = re.compile(r"<!-- (mull:[a-z-]+)")


def agent_turns() -> list[dict]:
    """Long enough a first turn that kills land mid-run; the edit carries the critique's key into the diff."""
    return [
        {"sleep": 1.0, "tool_calls": [{"name": "edit_file", "arguments": {
            "path": "src/widgets.py", "old": "return 41", "new": f"return 42  # {CRITIQUE}"}}]},
        {"tool_calls": [{"name": "finish", "arguments": {"summary": "Answer fixed.", "not_done": []}}]},
    ]


def idle_turns() -> list[dict]:
    return [{"sleep": 0.5, "tool_calls": [{"name": "finish", "arguments": {
        "summary": "Nothing to change.", "not_done": []}}]}]


def critique_turns() -> list[dict]:
    return [{"tool_calls": [{"name": "submit_critique", "arguments": {
        "summary": "Changes the answer.", "effort": 1, "risks": [], "security": [], "findings": [],
        "tests": "none", "tests_note": "none needed", "verdict": "pass"}}]}]


@dataclass(order=True)
class Event:
    at: float
    kind: str = field(compare=False)  # label | kill-worker | redis-down | redis-up
    issue: int = field(default=0, compare=False)


def schedule(rng: random.Random) -> list[Event]:
    """Labels at a steady pace; kills and outages at random moments among them, outages never overlapping."""
    span = ISSUES * LABEL_EVERY_S
    events = [Event(1.0 + i * LABEL_EVERY_S, "label", i) for i in range(ISSUES)]
    events += [Event(rng.uniform(2.0, span), "kill-worker") for _ in range(WORKER_KILLS)]
    slots = rng.sample(range(REDIS_RESTARTS * 2), REDIS_RESTARTS)  # disjoint windows of the span
    window = span / (REDIS_RESTARTS * 2)
    for slot in slots:
        down = 2.0 + slot * window + rng.uniform(0, window / 2)
        events += [Event(down, "redis-down"), Event(down + rng.uniform(0.5, 2.5), "redis-up")]
    return sorted(events)


@dataclass
class Chaos:
    kills: list[tuple[float, MullProcess]] = field(default_factory=list)
    redis_restarts: int = 0
    labels_during_outage: list[int] = field(default_factory=list)


def run_schedule(events: list[Event], cluster: MullCluster, redis_server: RedisProcess, github_double: Any,
                 issues: list[int], rng: random.Random) -> Chaos:
    chaos, start, redis_down = Chaos(), time.monotonic(), False
    for event in events:
        time.sleep(max(0.0, start + event.at - time.monotonic()))
        if event.kind == "label":
            status = github_double.label_issue(REPO, issues[event.issue], "mull", MAINTAINER)
            if redis_down:
                chaos.labels_during_outage.append(issues[event.issue])
                assert status == 503, status  # refused, so GitHub shows it failed and Mull redelivers it
            else:
                assert status in (202, 503), status  # 503: Redis had just come back, a connection was stale
                if status == 503:
                    chaos.labels_during_outage.append(issues[event.issue])
        elif event.kind == "kill-worker":
            victim = rng.choice([w for w in cluster.workers if w.alive()])
            victim.kill()
            chaos.kills.append((time.monotonic(), victim))
            cluster.start_worker()
        elif event.kind == "redis-down":
            redis_server.kill()
            redis_down = True
        else:
            redis_server.start()
            redis_down = False
            chaos.redis_restarts += 1
    return chaos


def log_events(process: MullProcess) -> list[dict]:
    out = []
    for line in process.log().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


def interrupted_runs(cluster: MullCluster, killed: set[int]) -> tuple[Counter[int], int]:
    """The runs a kill cut short, on the killed workers' logs: per issue, agent runs started whose result was
    never kept; and critiques started that never finished."""
    agents: Counter[int] = Counter()
    critiques = 0
    for process in cluster.workers:
        if id(process) not in killed:
            continue
        started: dict[str, int] = {}
        kept: set[str] = set()
        critiqued: Counter[tuple[int, str]] = Counter()
        for record in log_events(process):
            event = record.get("event")
            if event == "agent starting" and str(record.get("run", "")).startswith("implement-"):
                started[record["run"]] = int(record["issue"])
            elif event == "agent result kept":
                kept.add(record.get("run", ""))
            elif event == "critique starting":
                critiqued[(record["pr"], record["sha"])] += 1
            elif event in ("critique done", "critique failed"):
                critiqued[(record["pr"], record["sha"])] -= 1
        for run, issue in started.items():
            if run not in kept:
                agents[issue] += 1
        critiques += sum(n for n in critiqued.values() if n > 0)
    return agents, critiques


def critique_runs(scripted_model: Any) -> int:
    return sum(1 for r in scripted_model.requests if r["key"] == CRITIQUE and r["turn"] == 0)


def agent_runs(scripted_model: Any, markers: dict[int, str]) -> dict[int, int]:
    """First turns of the implementing agent per issue, as the scripted model saw them."""
    runs = dict.fromkeys(markers, 0)
    for request in scripted_model.requests:
        if request["key"] in (AGENT, IDLE) and request["turn"] == 0:
            text = json.dumps(request["body"]["messages"][:2])
            for number, marker in markers.items():
                if marker in text:
                    runs[number] += 1
    return runs


def duplicated_comments(github_double: Any, number: int) -> list[str]:
    """Kinds of Mull comment (by their hidden marker, else their first line) posted more than once here."""
    kinds = Counter()
    for comment in github_double.comments(REPO, number):
        if comment.user.login == github_double.bot_login:
            found = MARKER.search(comment.body)
            kinds[found.group(1) if found else comment.body.strip().splitlines()[0][:80]] += 1
    return [kind for kind, n in kinds.items() if n > 1]


def mull_status(cluster: MullCluster) -> dict:
    out = subprocess.run([MULL, "status", "--json"], env=cluster.env, cwd=cluster.workdir, capture_output=True,
                         text=True, timeout=30, check=True)
    return json.loads(out.stdout)


def outcome(github_double: Any, number: int) -> str:
    """"pr", "failed" or what the status comment says instead (an unfinished issue)."""
    comments = status_comments(github_double, number)
    if not comments:
        return "no status comment"
    phase = re.search(r'"phase":"([a-z-]+)"', comments[0].body)
    found = phase.group(1) if phase else "no phase"
    return {"pr-opened": "pr", "failed": "failed"}.get(found, found)


def test_chaos_every_issue_ends_once(tmp_path: Path, github_double, scripted_model, app_keypair) -> None:
    began = time.monotonic()
    rng = random.Random(SEED)
    redis_server = RedisProcess(tmp_path / "redis").start()
    github_double.set_permission(REPO, MAINTAINER, "write")
    github_double.commit_files(REPO, "main", {".github/mull.yml": "max_in_flight: 6\nmax_awaiting_review: 3\n"})
    scripted_model.script(CRITIQUE, critique_turns())  # first: a critique's prompt holds the issue's text too
    scripted_model.script(AGENT, agent_turns())
    scripted_model.script(IDLE, idle_turns())
    markers, issues = {}, []
    for n in range(ISSUES):
        marker = f"CHAOS-{n}-END"
        body = f"{IDLE if n in FAILING else AGENT} {marker}"
        number = github_double.create_issue(REPO, f"Chaos task {n}", body, author=MAINTAINER).number
        markers[number] = marker
        issues.append(number)
    failing = {issues[n] for n in FAILING}

    env = cluster_env(tmp_path, redis_server.url, github_double, scripted_model, MULL_PRIVATE_KEY=app_keypair[0],
                      MULL_REDELIVER_INTERVAL="10", MULL_INSTALLATION_RUNS="6", MULL_WORKER_HEARTBEAT="2",
                      MULL_LOG_LEVEL="INFO")
    cluster = MullCluster(tmp_path, env)
    cluster.context = lambda: "\nlast GitHub requests:\n" + "\n".join(
        f"{r.method} {r.path} {r.status}" for r in github_double.requests()[-15:])
    try:
        cluster.start_web()
        github_double.set_webhook(cluster.webhook_url)
        for _ in range(WORKERS):
            cluster.start_worker()
        wait_for(lambda: all("worker started" in w.log() for w in cluster.workers), timeout=30,
                 what="the workers to start", cluster=cluster)
        chaos = run_schedule(schedule(rng), cluster, redis_server, github_double, issues, rng)
        def unfinished() -> dict[int, str]:
            return {n: o for n in issues if (o := outcome(github_double, n)) not in ("pr", "failed")}

        try:
            wait_for(lambda: not unfinished(), timeout=60, what="every issue to end in a PR or a failure",
                     cluster=cluster)
        except AssertionError as exc:
            raise AssertionError(f"unfinished issues: {unfinished()}\n{exc}") from None
        # Critiques of the last PRs may still run; on a machine busy with other tests that takes a while.
        settle(cluster, github_double, horizon=10, timeout=150)
        status = mull_status(cluster)
    finally:
        cluster.stop()
        redis_server.kill()

    outcomes = {n: outcome(github_double, n) for n in issues}
    pulls = defaultdict(list)
    for pull in github_double.pulls(REPO):
        pulls[pull.head_ref].append(pull)
    runs = agent_runs(scripted_model, markers)
    interrupted, critiques_interrupted = interrupted_runs(cluster, {id(p) for _, p in chaos.kills})
    deliveries = github_double.deliveries
    attempts = Counter(d.id for d in deliveries)
    summary = {
        "seed": SEED, "issues": len(issues), "prs": sum(o == "pr" for o in outcomes.values()),
        "failures": sum(o == "failed" for o in outcomes.values()), "kills": len(chaos.kills),
        "redis_restarts": chaos.redis_restarts, "labels_during_outage": len(chaos.labels_during_outage),
        "agent_runs": sum(runs.values()), "reruns": sum(max(0, r - 1) for r in runs.values()),
        "interrupted_runs": sum(interrupted.values()), "critiques": critique_runs(scripted_model),
        "critiques_interrupted": critiques_interrupted, "deliveries": len(deliveries),
        "redeliveries": len(deliveries) - len(attempts), "dead_letters_left": status["dead_letters"]["count"],
        "seconds": round(time.monotonic() - began, 1),
    }
    print("chaos summary: " + " ".join(f"{k}={v}" for k, v in summary.items()))

    for number in issues:
        branch = f"mull/issue-{number}"
        if number in failing:
            assert outcomes[number] == "failed", (number, outcomes[number])
            assert not pulls[branch] and branch not in github_double.branches(REPO), number
            assert "without changing any file" in status_comments(github_double, number)[0].body
        else:
            assert outcomes[number] == "pr", (number, outcomes[number])
            assert len(pulls[branch]) == 1, (number, [p.number for p in pulls[branch]])
            assert github_double.branches(REPO).count(branch) == 1
        assert len(status_comments(github_double, number)) == 1, number
        assert duplicated_comments(github_double, number) == [], number
        for pull in pulls[branch]:
            assert duplicated_comments(github_double, pull.number) == [], (number, pull.number)
        # the agent ran once, again only after a kill cut a run short before its result was kept
        assert 1 <= runs[number] <= 1 + interrupted[number], (number, runs[number], interrupted[number])
    assert not {p.head_ref for p in github_double.pulls(REPO)} - {f"mull/issue-{n}" for n in issues}
    # one critique per pull request, again only after a kill cut one short
    assert summary["prs"] <= summary["critiques"] <= summary["prs"] + critiques_interrupted, summary
    assert len([i for i in github_double.issues(REPO) if i.title == DASHBOARD_TITLE]) <= 1
    for number in chaos.labels_during_outage:  # refused while Redis was down, redelivered and handled
        refused = [d for d in deliveries if d.event == "issues" and d.payload["issue"]["number"] == number
                   and d.payload.get("action") == "labeled"]
        assert len(refused) >= 2 and any(d.status == 202 for d in refused), number
    assert {d.status for d in deliveries} <= {200, 202, 503}, Counter(d.status for d in deliveries)
    assert status["dead_letters"]["count"] == 0, status["dead_letters"]
    assert status["running"] == [] and status["queued"] == [], status
    assert summary["kills"] == WORKER_KILLS and summary["redis_restarts"] == REDIS_RESTARTS
