"""A week of Mull on a fake clock: 60 issues labeled over five working days, one reviewer merging 8 pull requests a
day. The webhooks go through a real ``mull web`` into Redis; the worker runs in this process in bursts, with the
backlog's clock moved an hour at a time. After every step: no more ready pull requests than the cap, every
issue in exactly one visible state, at most one digest per reviewer per window. At the end it prints how many
notifications the reviewer got against how many a bot that pings on every event would have sent."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from doubles.e2e import MAINTAINER
from doubles.fixtures import REPO, SEED_FILES
from doubles.inprocess import Clock, in_process

from worker.backlog.sweep import sweep_backlogs
from worker.views.digest_window import window_key, window_start
from worker.views.digests import send_digests

# Two minutes on an idle machine; a loaded one may need more than the suite's 300 s per test.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

REVIEWER = "rita"
CAP = 3
DAYS = 5
PER_DAY = 12  # labeled at 09:00-14:00 local, two an hour
REVIEWS_PER_DAY = 8  # one merge an hour, 10:00-17:00
START = datetime(2026, 11, 30, tzinfo=UTC)  # a Monday
CONFIG = f"""max_awaiting_review: {CAP}
max_in_flight: 2
reviewers: [{REVIEWER}]
timezone: UTC
digest:
  schedule: "0 9 * * 1-5"
"""


def agent(n: int) -> list[dict]:
    return [
        {"tool_calls": [{"name": "write_file", "arguments": {"path": f"tasks/t{n}.txt", "content": f"task {n}\n"}}]},
        {"tool_calls": [{"name": "finish", "arguments": {"summary": f"Task {n} done.", "not_done": []}}]},
    ]


def critique(effort: int) -> list[dict]:
    return [{"tool_calls": [{"name": "submit_critique", "arguments": {
        "summary": "Adds a task file.", "effort": effort, "risks": [], "security": [], "findings": [],
        "tests": "none", "tests_note": "", "verdict": "pass"}}]}]


def visible_state(double, number: int) -> list[str]:
    """Every state a person can see for an issue: its labels, its pull request's draft flag, merged."""
    issue = double.issue(REPO, number)
    states = [label for label in issue.labels if label in ("mull:queued", "mull:working", "mull:waiting",
                                                             "mull:snoozed")]
    for pull in double.pulls(REPO):
        if pull.head_ref != f"mull/issue-{number}":
            continue
        if pull.merged:
            states.append("merged")
        elif double.issue(REPO, pull.number).state == "open":
            states.append("draft" if pull.draft else "awaiting review")
    return states


def test_a_week_of_sixty_issues_and_one_reviewer(tmp_path: Path, redis_url, github_double, scripted_model,
                                                 app_keypair) -> None:
    github_double.set_permission(REPO, MAINTAINER, "write")
    github_double.set_permission(REPO, REVIEWER, "write")
    github_double.commit_files(REPO, "main", {**SEED_FILES, ".github/mull.yml": CONFIG}, "Mull config")
    asyncio.run(_simulate(tmp_path, redis_url, github_double, scripted_model, app_keypair[0]))


async def _simulate(tmp_path: Path, redis_url: str, double, model, private_pem: str) -> None:
    clock = Clock(START)
    async with in_process(tmp_path, redis_url, double, model, private_pem, clock) as mull:
        await _week(mull, double, model, clock)


async def _week(mull, double, model, clock: Clock) -> None:
    drain, ctx = mull.drain, mull.ctx
    numbers: list[int] = []
    merged = 0
    digest_windows: Counter[str] = Counter()  # (reviewer, window) -> digests sent
    seen_digests: set[int] = set()
    for hour in range(7 * 24):
        clock.now = (START + timedelta(hours=hour)).timestamp()
        day, at = divmod(hour, 24)
        if day < DAYS and 9 <= at < 9 + PER_DAY // 2:
            for _ in range(2):
                n = len(numbers)
                model.script(f"AGENT-w{n}-END", agent(n))
                model.script(f"tasks/t{n}.txt", critique(effort=1 + n % 5))
                issue = double.create_issue(REPO, f"Task {n}", f"AGENT-w{n}-END", author=MAINTAINER)
                assert double.label_issue(REPO, issue.number, "mull", MAINTAINER) == 202
                numbers.append(issue.number)
        await drain()
        if day < DAYS and 10 <= at < 10 + REVIEWS_PER_DAY:
            ready = sorted(p.number for p in double.pulls(REPO) if not p.draft and not p.merged
                           and double.issue(REPO, p.number).state == "open")
            if ready:
                double.merge_pull(REPO, ready[0], REVIEWER)
                merged += 1
                await drain()
        await sweep_backlogs(ctx)
        await send_digests(ctx)
        await drain()

        ready_now = [p for p in double.pulls(REPO) if not p.draft and not p.merged
                     and double.issue(REPO, p.number).state == "open"]
        assert len(ready_now) <= CAP, f"hour {hour}: {len(ready_now)} ready"
        for number in numbers:
            states = visible_state(double, number)
            assert len(states) == 1, f"hour {hour}: #{number} shows {states}"
        window = window_key(window_start("0 9 * * 1-5", "UTC", datetime.fromtimestamp(clock.now, UTC), True)
                            or START)
        for comment_id, reviewer in _digests(double).items():
            if comment_id not in seen_digests:
                seen_digests.add(comment_id)
                digest_windows[f"{reviewer}:{window}"] += 1
        assert all(count <= 1 for count in digest_windows.values()), f"hour {hour}: {digest_windows}"

    assert len(numbers) == DAYS * PER_DAY and merged == DAYS * REVIEWS_PER_DAY
    board = next(i for i in double.issues(REPO) if i.title == "Mull review queue")
    open_work = DAYS * (PER_DAY - REVIEWS_PER_DAY)
    assert f"Awaiting review ({CAP} of {CAP})" in board.body  # the week ends with the rest waiting as drafts
    held_rows = re.findall(r"^\| (?:next|\d+\w\w in line) \|", board.body, re.MULTILINE)
    assert len(held_rows) == open_work - CAP
    requests = [r for r in double.requests("POST") if r.path.endswith("/requested_reviewers")]
    digests = sum(digest_windows.values())
    got = len(requests) + digests
    events = _events(double, numbers, merged)
    naive = sum(events.values())
    print(f"\nreviewer notifications: {got} (review requests {len(requests)}, digests {digests}); "
          f"a bot that pings on every event: {naive} ({dict(events)}); ratio {got / naive:.2f}")
    assert set(digest_windows) <= {f"{REVIEWER}:{window_key(START + timedelta(days=d, hours=9))}"
                                   for d in range(DAYS)}  # business mornings only
    assert got < naive / 3


def _digests(double) -> dict[int, str]:
    """Digest comments on the dashboard issue: comment id -> the reviewer it mentions."""
    board = next((i for i in double.issues(REPO) if i.title == "Mull review queue"), None)
    found: dict[int, str] = {}
    for comment in double.comments(REPO, board.number) if board else []:
        mention = re.match(r"@([\w-]+)", comment.body)
        if comment.user.login == double.bot_login and mention:
            found[comment.id] = mention.group(1)
    return found


def _events(double, numbers: list[int], merged: int) -> Counter[str]:
    """Every event of the week a ping-on-every-event bot would have told the reviewer about, once each."""
    pulls = [p for p in double.pulls(REPO) if p.head_ref.startswith("mull/issue-")]
    critiques = sum(1 for p in pulls for c in double.comments(REPO, p.number)
                    if c.user.login == double.bot_login and "mull:critique" in c.body)
    ready = sum(1 for r in double.requests("POST") if r.path.endswith("/requested_reviewers"))
    return Counter({"labeled": len(numbers), "run started": len(pulls), "pull request opened": len(pulls),
                    "critique": critiques, "ready for review": ready, "merged": merged})
