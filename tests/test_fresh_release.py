"""Fresh at release, in process against the GitHub double served over smart HTTP (Mull's real git fetches and
pushes) on a real Redis: a held draft whose base moved is merged or rebased, re-tested by a real test command,
and only then marked ready; a conflicting base change gets one revision request listing the files and is released
only after that revision merges; a revision that leaves conflict markers keeps it a draft with a status line."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from doubles import bare_repo
from doubles.e2e import MAINTAINER
from doubles.fixtures import INSTALLATION_ID, REPO
from doubles.in_process_github import InProcessGitHub, in_process_github
from doubles.services import job_ctx

from bot.job_codec import deserialize
from bot.jobs import QUEUE, Delivery
from worker.backlog import freshen
from worker.backlog import store as backlogs
from worker.backlog.release import release
from worker.backlog.state import Item
from worker.backlog.store import Limits
from worker.trees import base_update
from worker.trees.repo_cache import RepoCache
from worker.webhooks.handlers import handle_delivery

CHANGED = "def answer():\n    return 42\n"


class ShellTests:
    """A real test run: ``sh -c`` in the tree Mull hands over, counting the trees it saw."""

    def __init__(self, script: str) -> None:
        self.script = script
        self.trees: list[dict[str, str]] = []

    async def __call__(self, tree: Path) -> bool:
        self.trees.append({p.relative_to(tree).as_posix(): p.read_text() for p in tree.rglob("*") if p.is_file()})
        process = await asyncio.create_subprocess_exec("sh", "-c", self.script, cwd=tree)
        return await process.wait() == 0


def run(tmp_path: Path, redis_url: str, app_keypair: tuple[str, str], scenario: Any, **services: Any) -> Any:
    async def main() -> Any:
        async with in_process_github(tmp_path, redis_url, app_keypair, served=True,
                                     repos=RepoCache(tmp_path / "cache"), **services) as world:
            world.double.set_permission(REPO, MAINTAINER, "write")
            return await scenario(world)
    return asyncio.run(main())


async def held_pull(world: InProcessGitHub, files: dict[str, str | None], update: str = "merge") -> tuple[int, int]:
    """An issue labeled (so it has its status comment), its branch and draft pull request, held for a slot."""
    if update != "merge":
        world.double.commit_files(REPO, "main", {".github/mull.yml": f"update: {update}\n"}, "config")
    number = world.double.create_issue(REPO, "Answer 42", "", author=MAINTAINER).number
    seen = len(world.double.deliveries)
    world.double.label_issue(REPO, number, "mull", MAINTAINER)
    for sent in world.double.deliveries[seen:]:
        await handle_delivery(job_ctx(world.svc, f"d:{sent.id}"), Delivery(sent.id, sent.event, sent.body, 0))
    branch = f"mull/issue-{number}"
    world.double.commit_files(REPO, branch, files, "the agent's change", base="main")
    async with world.gh as gh:
        pull = (await gh.rest.pulls.async_create("acme", "widgets", title="Answer 42", head=branch, base="main",
                                                 body=f"Fixes #{number}", draft=True)).json()
    backlog = backlogs.of(world.svc, world.ref.repo_id)
    await backlog.remember_repo(INSTALLATION_ID, REPO, Limits(max_awaiting_review=3))
    await backlog.run_ended(number)
    await backlog.hold(Item(issue=number, pr=pull["number"], labeled_at=1.0, extra={"candidates": []}))
    return number, int(pull["number"])


def pull_of(world: InProcessGitHub, pr: int) -> Any:
    return next(p for p in world.double.pulls(REPO) if p.number == pr)


def status(world: InProcessGitHub, number: int) -> str:
    [body] = [c.body for c in world.double.comments(REPO, number)
              if c.user.login == world.double.bot_login and "mull:status" in c.body]
    return body


async def release_now(world: InProcessGitHub) -> list[int]:
    async with world.gh as gh:
        return await release(world.svc, gh, world.ref)


async def revisions(world: InProcessGitHub) -> list[Any]:
    found = []
    for job_id in await world.svc.redis.zrange(QUEUE, 0, -1):
        if job_id.decode().startswith("revise:"):
            raw = await world.svc.redis.get(f"arq:job:{job_id.decode()}")
            found.append(deserialize(raw)["a"][0])
    return found


def repo_path(world: InProcessGitHub) -> Path:
    return world.double.state.repo(REPO).path


@pytest.mark.parametrize("mode", ["merge", "rebase"])
def test_a_held_draft_whose_base_moved_is_updated_and_retested_before_release(
        mode: str, tmp_path: Path, redis_url: str, app_keypair: tuple[str, str]) -> None:
    tests = ShellTests("grep -q 'return 42' src/widgets.py && test -f BASE.md")

    async def scenario(world: InProcessGitHub) -> None:
        number, pr = await held_pull(world, {"src/widgets.py": CHANGED}, mode)
        branch = f"mull/issue-{number}"
        old_head = world.double.branch_sha(REPO, branch)
        tip = world.double.commit_files(REPO, "main", {"BASE.md": "moved on\n"}, "someone else's work")
        assert await release_now(world) == [number]
        head = world.double.branch_sha(REPO, branch)
        assert head != old_head and bare_repo.is_ancestor(repo_path(world), tip, head)
        assert world.double.branch_files(REPO, branch)["src/widgets.py"] == CHANGED
        assert not pull_of(world, pr).draft
        assert len(tests.trees) == 1 and tests.trees[0]["BASE.md"] == "moved on\n"  # the updated tree was tested
        if mode == "rebase":  # linear on the base, the agent's commit replayed
            assert bare_repo.git(repo_path(world), "rev-list", "--merges", f"{tip}..{head}").strip() == ""
        assert "up to date with `main`" in status(world, number)
        # Everything again (a rerun, a second release): no second update, no second test.
        async with world.gh as gh:
            issue_run = freshen_issue(world, gh, number)
            assert await freshen.ready_for_review(world.svc, gh, world.ref, issue_run, pr)
        assert world.double.branch_sha(REPO, branch) == head and len(tests.trees) == 1

    run(tmp_path, redis_url, app_keypair, scenario, retest=tests)


def freshen_issue(world: InProcessGitHub, gh: Any, number: int) -> Any:
    from worker import lifecycle
    return lifecycle.of(world.svc, gh, world.ref, number, world.double.bot_login)


def test_failing_tests_after_the_update_get_one_revision_then_a_status_line(
        tmp_path: Path, redis_url: str, app_keypair: tuple[str, str]) -> None:
    tests = ShellTests("! test -f BASE.md")  # the base's new file breaks the tests

    async def scenario(world: InProcessGitHub) -> None:
        number, pr = await held_pull(world, {"src/widgets.py": CHANGED})
        branch = f"mull/issue-{number}"
        world.double.commit_files(REPO, "main", {"BASE.md": "moved on\n"}, "someone else's work")
        assert await release_now(world) == [] and pull_of(world, pr).draft
        [asked] = await revisions(world)
        assert asked.reason == "update" and "tests fail" in asked.notes and asked.update_head == ""
        assert await release_now(world) == [] and len(tests.trees) == 1  # waits for the revision; no re-test
        world.double.commit_files(REPO, branch, {"NOTE.md": "tried\n"}, "the revision")  # did not fix it
        assert await release_now(world) == [] and pull_of(world, pr).draft
        assert "**Not released for review:**" in status(world, number) and "even after" in status(world, number)
        assert len(await revisions(world)) == 1  # one round, not two

    run(tmp_path, redis_url, app_keypair, scenario, retest=tests)


def test_a_conflicting_base_change_gets_one_revision_and_is_released_only_after(
        tmp_path: Path, redis_url: str, app_keypair: tuple[str, str]) -> None:
    async def scenario(world: InProcessGitHub) -> None:
        number, pr = await held_pull(world, {"src/widgets.py": CHANGED})
        branch = f"mull/issue-{number}"
        head = world.double.branch_sha(REPO, branch)
        tip = world.double.commit_files(REPO, "main", {"src/widgets.py": "def answer():\n    return 43\n"},
                                        "a conflicting change")
        assert await release_now(world) == [] and pull_of(world, pr).draft
        assert world.double.branch_sha(REPO, branch) == head  # nothing pushed with markers in it
        [asked] = await revisions(world)
        assert asked.reason == "update" and "src/widgets.py" in asked.notes and "conflict" in asked.notes
        assert (asked.update_head, asked.update_base) == (head, tip)
        assert "conflicts in `src/widgets.py`" in status(world, number)
        assert await release_now(world) == [] and len(await revisions(world)) == 1  # the same round, not another
        # The revision starts from the conflicted merge and resolves it (what revise_pr pushes).
        start = await base_update.update(repo_path(world), "merge", head, tip, "main", "mull", "m@x")
        assert "<<<<<<<" in bare_repo.files_at(repo_path(world), start.sha)["src/widgets.py"]
        bare_repo.git(repo_path(world), "update-ref", f"refs/heads/{branch}", start.sha)
        world.double.commit_files(REPO, branch, {"src/widgets.py": "def answer():\n    return 42  # was 43\n"},
                                  "resolve")
        assert await release_now(world) == [number] and not pull_of(world, pr).draft

    run(tmp_path, redis_url, app_keypair, scenario)


def test_a_revision_that_leaves_conflict_markers_keeps_the_draft(tmp_path: Path, redis_url: str,
                                                                 app_keypair: tuple[str, str]) -> None:
    async def scenario(world: InProcessGitHub) -> None:
        number, pr = await held_pull(world, {"src/widgets.py": CHANGED})
        branch = f"mull/issue-{number}"
        head = world.double.branch_sha(REPO, branch)
        tip = world.double.commit_files(REPO, "main", {"src/widgets.py": "def answer():\n    return 43\n"}, "x")
        assert await release_now(world) == []
        start = await base_update.update(repo_path(world), "merge", head, tip, "main", "mull", "m@x")
        bare_repo.git(repo_path(world), "update-ref", f"refs/heads/{branch}", start.sha)
        world.double.commit_files(REPO, branch, {"OTHER.md": "unrelated\n"}, "a revision that missed it")
        assert await release_now(world) == [] and pull_of(world, pr).draft
        line = status(world, number)
        assert "**Not released for review:**" in line and "conflict markers remain in `src/widgets.py`" in line
        before = status(world, number)
        assert await release_now(world) == [] and status(world, number) == before  # said once

    run(tmp_path, redis_url, app_keypair, scenario)


@pytest.mark.parametrize("command, passes", [("test -f BASE.md && grep -q 'return 42' src/widgets.py", True),
                                             ("! test -f BASE.md", False)])
def test_the_repositorys_test_command_is_run_again_on_the_updated_tree(
        command: str, passes: bool, tmp_path: Path, redis_url: str, app_keypair: tuple[str, str]) -> None:
    async def scenario(world: InProcessGitHub) -> None:
        world.double.commit_files(REPO, "main", {".github/mull.yml": f"test: \"{command}\"\n"}, "tests")
        number, pr = await held_pull(world, {"src/widgets.py": CHANGED})
        world.double.commit_files(REPO, "main", {"BASE.md": "moved on\n"}, "someone else's work")
        assert await release_now(world) == ([number] if passes else [])
        assert pull_of(world, pr).draft is not passes
        asked = await revisions(world)
        assert (asked == []) if passes else ("tests fail" in asked[0].notes)

    run(tmp_path, redis_url, app_keypair, scenario)
