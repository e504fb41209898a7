"""The base branch of an issue's run: names checked against git's rules before anything uses them, the
issue body's ``base:`` line, ``/mull base`` with its replies, and the label refusing a branch that is not there.
Handlers run in process against the GitHub double; Redis is real."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import pytest
from doubles.e2e import MAINTAINER, READER
from doubles.fixtures import REPO
from doubles.in_process_github import InProcessGitHub, in_process_github
from doubles.services import job_ctx

from bot.jobs import Delivery, solve_job_id
from worker.backlog import store as backlogs
from worker.github import base_branch
from worker.webhooks.handlers import handle_delivery

HOSTILE_NAMES = ["..", "a..b", "-upload-pack=evil", "--exec=sh", "has space", "tab\there", "nul\x00x", "bell\x07",
                 "del\x7f", "x~1", "x^", "a:b", "a?", "a*", "a[b", "a\\b", "/lead", "trail/", "a//b", "end.",
                 ".hidden", "a/.dot", "x.lock", "a@{1}", "@", "HEAD", "refs/heads/main", "x" * 201, ""]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_names_git_would_refuse_or_read_as_options_are_refused(name: str, tmp_path: Path) -> None:
    assert base_branch.ref_name_error(name) is not None
    with pytest.raises(base_branch.BadBase, match="is not a valid branch name"):
        base_branch.checked(name)
    # git itself agrees, except where Mull is stricter (HEAD, full refs, a long name).
    if name and "\x00" not in name and name not in ("HEAD", "@", "refs/heads/main", "x" * 201):
        assert subprocess.run(["git", "check-ref-format", "--branch", name], capture_output=True,
                              cwd=tmp_path).returncode != 0


@pytest.mark.parametrize("name", ["dev", "release/1.2", "feature/x-y_z", "v2.0", "user@host", "ünïcode"])
def test_ordinary_branch_names_pass_and_git_agrees(name: str, tmp_path: Path) -> None:
    assert base_branch.ref_name_error(name) is None and base_branch.checked(name) == name
    assert subprocess.run(["git", "check-ref-format", "--branch", name], capture_output=True,
                          cwd=tmp_path).returncode == 0


def test_the_base_line_is_read_from_prose_not_code() -> None:
    assert base_branch.from_body("Fix it.\n\nbase: dev\n") == "dev"
    assert base_branch.from_body("Base:   `release/1.2`  \r\nmore") == "release/1.2"
    assert base_branch.from_body("```\nbase: dev\n```\nnothing else") is None
    assert base_branch.from_body("no line here") is None and base_branch.from_body(None) is None
    assert base_branch.from_body("base: a..b") == "a..b"  # returned as written: the caller refuses it


def run(tmp_path: Path, redis_url: str, app_keypair: tuple[str, str], scenario: Any) -> Any:
    async def main() -> Any:
        async with in_process_github(tmp_path, redis_url, app_keypair) as world:
            world.double.set_permission(REPO, MAINTAINER, "write")
            world.double.set_permission(REPO, READER, "read")
            world.double.commit_files(REPO, "dev", {"DEV.md": "dev only\n"}, "dev work", base="main")
            return await scenario(world)
    return asyncio.run(main())


async def act(world: InProcessGitHub, person: Any) -> list[str]:
    seen = len(world.double.deliveries)
    person()
    outcomes = []
    for sent in world.double.deliveries[seen:]:
        outcomes.append(await handle_delivery(job_ctx(world.svc, f"delivery:{sent.id}"),
                                              Delivery(sent.id, sent.event, sent.body, 0)))
    return outcomes


def replies(world: InProcessGitHub, number: int) -> list[str]:
    return [c.body for c in world.double.comments(REPO, number)
            if c.user.login == world.double.bot_login and "mull:status" not in c.body]


def reactions(world: InProcessGitHub, number: int) -> set[str]:
    mine = [c for c in world.double.comments(REPO, number) if c.user.login != world.double.bot_login][-1]
    return {r.content for r in mine.reactions}


async def queued(world: InProcessGitHub, number: int) -> bool:
    return await backlogs.of(world.svc, world.ref.repo_id).is_pending(number)


def test_a_base_line_naming_an_existing_branch_is_kept_with_the_run(tmp_path: Path, redis_url: str,
                                                                    app_keypair: tuple[str, str]) -> None:
    async def scenario(world: InProcessGitHub) -> None:
        number = world.double.create_issue(REPO, "On dev", "Please.\n\nbase: dev\n", author=MAINTAINER).number
        assert await act(world, lambda: world.double.label_issue(REPO, number, "mull", MAINTAINER)) == ["queued"]
        backlog = backlogs.of(world.svc, world.ref.repo_id)
        assert await backlog.base_choice(number) == ("dev", "body")
        # A later command before the run starts changes it.
        world.double.commit_files(REPO, "release/2", {"R.md": "r\n"}, "release", base="main")
        await act(world, lambda: world.double.comment_as(REPO, number, "/mull base release/2", MAINTAINER))
        assert await backlog.base(number) == "release/2" and "rocket" in reactions(world, number)
        assert "will start from `release/2`" in replies(world, number)[-1]
        await backlog.forget(number)
        assert await backlog.base(number) is None  # leaves with the record

    run(tmp_path, redis_url, app_keypair, scenario)


@pytest.mark.parametrize("line, said", [
    ("base: a..b", "`a..b` is not a valid branch name"),
    ("base: --upload-pack=touch /tmp/pwned", "is not a valid branch name"),
    ("base: nope", "the branch `nope` does not exist in acme/widgets"),
])
def test_a_base_line_that_cannot_be_used_is_explained_and_nothing_runs(
        line: str, said: str, tmp_path: Path, redis_url: str, app_keypair: tuple[str, str]) -> None:
    async def scenario(world: InProcessGitHub) -> None:
        number = world.double.create_issue(REPO, "Bad", f"Do it.\n{line}\n", author=MAINTAINER).number
        assert await act(world, lambda: world.double.label_issue(REPO, number, "mull", MAINTAINER)) == ["bad base"]
        [reply] = replies(world, number)
        assert said in reply and "Mull did not start" in reply and "edit the issue's `base:` line" in reply
        assert not await queued(world, number)
        assert await backlogs.of(world.svc, world.ref.repo_id).base(number) is None
        job = await world.svc.redis.exists(f"arq:job:{solve_job_id(world.ref.repo_id, number)}")
        assert not job
        # The same delivery again says it once.
        assert len(replies(world, number)) == 1

    run(tmp_path, redis_url, app_keypair, scenario)


def test_mull_base_refuses_bad_names_and_missing_branches_and_changes_nothing(
        tmp_path: Path, redis_url: str, app_keypair: tuple[str, str]) -> None:
    async def scenario(world: InProcessGitHub) -> None:
        number = world.double.create_issue(REPO, "Cmd", "", author=MAINTAINER).number
        backlog = backlogs.of(world.svc, world.ref.repo_id)
        for text, said in [("/mull base -x", "cannot start with `-`"),
                           ("/mull base a..b", "cannot hold `..`"),
                           ("/mull base", "no branch name was given"),
                           ("/mull base two words", "cannot hold spaces"),
                           ("/mull base gone", "the branch `gone` does not exist in acme/widgets. Push it first")]:
            await act(world, lambda text=text: world.double.comment_as(REPO, number, text, MAINTAINER))
            assert said in replies(world, number)[-1], text
            assert {"eyes", "confused"} <= reactions(world, number)
            assert await backlog.base(number) is None
        await act(world, lambda: world.double.comment_as(REPO, number, "/mull base dev", READER))
        assert "write or triage access" in replies(world, number)[-1] and await backlog.base(number) is None
        await act(world, lambda: world.double.comment_as(REPO, number, "/mull base dev", MAINTAINER))
        assert await backlog.base(number) == "dev" and "rocket" in reactions(world, number)

    run(tmp_path, redis_url, app_keypair, scenario)


def test_mull_base_after_a_pull_request_exists_says_it_applies_to_the_next_run(
        tmp_path: Path, redis_url: str, app_keypair: tuple[str, str]) -> None:
    async def scenario(world: InProcessGitHub) -> None:
        number = world.double.create_issue(REPO, "Has PR", "", author=MAINTAINER).number
        backlog = backlogs.of(world.svc, world.ref.repo_id)
        await backlog.move(number, backlog_state("draft"), pr=99)
        await act(world, lambda: world.double.comment_as(REPO, number, "/mull base dev", MAINTAINER))
        reply = replies(world, number)[-1]
        assert "#99 already exists" in reply and "next run" in reply and "`dev`" in reply
        assert await backlog.base(number) == "dev"

    run(tmp_path, redis_url, app_keypair, scenario)


def backlog_state(name: str) -> Any:
    from worker.backlog.state import ItemState
    return ItemState(name)
