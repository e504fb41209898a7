"""Fresh at release: a held draft is brought up to date with its base branch before a reviewer gets it.

A finished pull request can wait as a draft for a review slot while its base branch moves on. Just before
``release`` marks it ready, this step merges (or rebases, per ``update:`` in ``.github/mull.yml``) the base into
it inside Mull's mirror (``worker/trees/base_update.py``: git never runs in a tree an agent wrote), pushes the
result by SHA with a lease on the head it read, and re-runs the tests on it (``worker/backlog/retest.py``: the
repository's ``test:``). When the update conflicts or the tests fail, the agent gets one revision round, asked
with the conflicted files listed; the pull request is released once that round's head merges (and passes). If
that round fails too, it stays a draft and the status comment says why and what to do.

Everything is keyed by the base commit: a job or delivery that runs again finds the update made (the head
already holds the base), the test result kept for that head, or the round already given, and does nothing twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from githubkit import GitHub

from bot import keys
from bot.jobs import RepoRef, ReviseRequest, enqueue_revise
from worker.backlog.retest import Retest, retest_for
from worker.github.base_branch import shown
from worker.jobs.services import Services
from worker.lifecycle import IssueLifecycle
from worker.ops.redis_reply import reply
from worker.repo_config.settings import config_for
from worker.trees import base_update
from worker.trees.repo_cache import RepoCache, push

FAILED_TTL_S = 30 * 24 * 3600
_SHOWN_FILES = 20


@dataclass(frozen=True)
class Record:
    """What Mull did about one pull request's base (``keys.base_update``)."""

    tested_head: str = ""  # the head the tests last ran on, and whether they passed
    tested: bool = False
    round_base: str = ""  # the base and head at which the one revision round was given
    round_head: str = ""
    round_files: tuple[str, ...] = ()  # the files that conflicted then

    @classmethod
    def of(cls, raw: dict[bytes, bytes]) -> Record:
        text = {k.decode(): v.decode() for k, v in raw.items()}
        return cls(tested_head=text.get("tested_head", ""), tested=text.get("tested") == "passed",
                   round_base=text.get("round_base", ""), round_head=text.get("round_head", ""),
                   round_files=tuple(json.loads(text.get("round_files") or "[]")))


async def ready_for_review(svc: Services, gh: GitHub, repo: RepoRef, issue_run: IssueLifecycle, pr: int) -> bool:
    """Whether held pull request ``pr`` may leave draft now, after bringing it up to date; False while a
    revision round works on it or when it failed (the status comment says so)."""
    pull: Any = (await gh.rest.pulls.async_get(repo.owner, repo.name, pr)).json()
    if pull.get("state") != "open":
        return True  # the release sees it closed
    config = await config_for(svc, gh, repo)
    cache: RepoCache = svc.repos
    clone_url, head_ref, base_name = pull["base"]["repo"]["clone_url"], pull["head"]["ref"], pull["base"]["ref"]
    mirror = await cache.fetch(repo.repo_id, clone_url, await svc.github.token(gh))
    base = await cache.remote_sha(mirror, base_name)
    head = await cache.remote_sha(mirror, head_ref)
    if base is None or head is None:
        gone = f"its base branch `{shown(base_name)}`" if base is None else "its branch"
        return await _failed(svc, repo, issue_run, pr, f"{gone} is gone", "has both branches again", base or "-",
                             head or "-")
    key = keys.base_update(repo.repo_id, pr)
    record = Record.of(await reply(svc.redis.hgetall(key)))
    step = _Step(svc, gh, repo, issue_run, pr, mirror, base, base_name, head, record, retest_for(svc, config))
    if await base_update.contains(mirror, head, base):
        if record.round_base and record.round_head != head and record.round_files:
            left = await base_update.markers_left(mirror, head, record.round_files)
            if left:
                return await step.failed(f"conflict markers remain in {_files(left)} after the revision")
        return await step.retested(head)
    if record.round_base == base and record.round_head == head:
        return False  # the revision round is on its way
    bot = await svc.github.identity(gh)
    done = await base_update.update(mirror, config.update, head, base, base_name, bot.login, bot.email)
    if done.conflicts:
        return await step.round(f"Bringing it up to date with `{base_name}` ({config.update}) conflicts in "
                                f"{_files(done.conflicts)}", done.conflicts, conflict=True)
    await push(mirror, clone_url, done.sha, head_ref, head, await svc.github.token(gh))
    svc.log.info("brought up to date with its base", repo=repo.full_name, pr=pr, base=base, head=done.sha,
                 mode=config.update)
    await issue_run.note(f"Brought #{pr} up to date with `{shown(base_name)}` ({config.update}) before "
                         f"review: `{done.sha[:12]}`.")
    return await step.retested(done.sha)


@dataclass(frozen=True)
class _Step:
    svc: Services
    gh: GitHub
    repo: RepoRef
    issue_run: IssueLifecycle
    pr: int
    mirror: Path
    base: str
    base_name: str
    head: str
    record: Record
    retest: Retest | None

    async def retested(self, sha: str) -> bool:
        """The re-test of ``sha`` (once per head); a failure gets the revision round."""
        retest = self.retest
        if retest is None:
            return True
        key = keys.base_update(self.repo.repo_id, self.pr)
        if self.record.tested_head == sha:
            passed = self.record.tested
        else:
            cache: RepoCache = self.svc.repos
            async with cache.run_tree(self.repo.repo_id, f"{self.repo.repo_id}-retest-{self.pr}", sha,
                                      spare_branch=self.base_name) as run:
                passed = await retest(run.tree)
            verdict = "passed" if passed else "failed"
            await reply(self.svc.redis.hset(key, mapping={"tested_head": sha, "tested": verdict}))
        if passed:
            return True
        return await self.round(f"The tests fail on the pull request brought up to date with `{self.base_name}`",
                                (), conflict=False, head=sha)

    async def round(self, why: str, files: tuple[str, ...], *, conflict: bool, head: str | None = None) -> bool:
        """Ask for the one revision round at this base, or say it failed when it was given already."""
        head = head or self.head
        if self.record.round_base == self.base:
            if self.record.round_head == head:
                return False
            return await self.failed(f"{why[0].lower()}{why[1:]} even after the agent's revision")
        request = ReviseRequest(
            installation_id=self.repo.installation_id, repo_id=self.repo.repo_id, repo=self.repo.full_name,
            pr=self.pr, reason="update", notes=_notes(why, files, conflict), requested_by="",
            update_head=head if conflict else "", update_base=self.base if conflict else "")
        await enqueue_revise(self.svc.redis, request, f"update-{self.base[:12]}-{head[:12]}")
        await reply(self.svc.redis.hset(keys.base_update(self.repo.repo_id, self.pr), mapping={
            "round_base": self.base, "round_head": head, "round_files": json.dumps(list(files))}))
        await self.issue_run.note(f"{why}: the agent gets one revision to fix it; #{self.pr} stays "
                                  "a draft until then.")
        self.svc.log.info("base update needs a revision", repo=self.repo.full_name, pr=self.pr, conflict=conflict,
                          files=list(files))
        return False

    async def failed(self, why: str) -> bool:
        return await _failed(self.svc, self.repo, self.issue_run, self.pr, why,
                             f"merges cleanly into `{shown(self.base_name)}`", self.base, self.head)


async def _failed(svc: Services, repo: RepoRef, issue_run: IssueLifecycle, pr: int, why: str, until: str,
                  base: str, head: str) -> bool:
    """It stays a draft; the status comment says why, once per base and head."""
    claimed = await svc.redis.set(keys.repo_once(repo.repo_id, f"update-failed:{pr}:{base}:{head}"), "1", nx=True,
                                  ex=FAILED_TTL_S)
    if claimed:
        await issue_run.note(f"**Not released for review:** {why}. #{pr} stays a draft; once it "
                             f"{until} (push a fix to its branch, or `/mull retry`), Mull releases it.")
        svc.log.warning("held pull request not released: base update failed", repo=repo.full_name, pr=pr, why=why)
    return False


def _files(paths: tuple[str, ...]) -> str:
    listed = [f"`{shown(p)}`" for p in paths[:_SHOWN_FILES]]
    more = f" and {len(paths) - _SHOWN_FILES} more" if len(paths) > _SHOWN_FILES else ""
    return ", ".join(listed) + more


def _notes(why: str, files: tuple[str, ...], conflict: bool) -> str:
    if conflict:
        listed = "\n".join(f"- {path}" for path in files)
        return (f"{why}.\n\nThe tree holds git's conflict markers (<<<<<<<, =======, >>>>>>>) in these files:\n"
                f"{listed}\n\nResolve every conflict, keeping the intent of both the pull request and the base "
                "branch, and remove all the markers.")
    return f"{why}. Make the tests pass again on the updated branch."
