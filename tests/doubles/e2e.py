"""Shared pieces of the end-to-end tests: the running Mull cluster fixture and ways to wait and look."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from arq import constants as arq_keys

from .fixtures import APP_ID, REPO
from .github import GitHubDouble
from .model_server import ScriptedModel
from .mull_process import MullCluster

MODEL_KEY = "sk-test-model-key-0123456789"
MAINTAINER, READER = "maria", "rick"


def wait_for(check: Callable[[], Any], timeout: float = 60, what: str = "condition",
             cluster: MullCluster | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cluster and not all(p.alive() for p in [cluster.web, *cluster.workers] if p and p.process
                               and p.process.returncode != -9):
            raise AssertionError(f"a mull process exited while waiting for {what}\n{cluster.logs()[-6000:]}")
        value = check()
        if value:
            return value
        time.sleep(0.2)
    logs = cluster.logs()[-6000:] + cluster.context() if cluster else ""
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


def settle(cluster: MullCluster, github_double: GitHubDouble, horizon: float = 10.0, timeout: float = 60) -> None:
    """Wait until Mull has nothing left to do: every webhook delivered, no job running, none due within
    ``horizon`` seconds (a revision's quiet time, a refresh), twice in a row. Asserting that something did NOT
    happen after this is sound on a slow machine, where a fixed sleep would pass too early."""
    conn = redis.Redis.from_url(cluster.env["MULL_REDIS_URL"])
    deadline, quiet_reads = time.monotonic() + timeout, 0
    try:
        busy = "nothing looked at yet"
        while quiet_reads < 2:
            if time.monotonic() > deadline:
                raise AssertionError(f"Mull did not settle within {timeout} s: {busy}\n{cluster.logs()[-4000:]}")
            idle = github_double.hooks.wait_idle(timeout=max(deadline - time.monotonic(), 0.1))
            due = conn.zrangebyscore(arq_keys.default_queue_name, "-inf", int((time.time() + horizon) * 1000))
            running = held_jobs(conn)
            quiet_reads = quiet_reads + 1 if idle and not due and not running else 0
            busy = (f"webhooks still sending: {not idle}; jobs due within {horizon} s: {due[:5]}; "
                    f"held by a worker: {running[:5]}")
            time.sleep(0.15)
    finally:
        conn.close()


def held_jobs(conn: redis.Redis) -> list[bytes]:
    """In-progress keys of jobs still running. arq keeps a cron job's in-progress key for a minute after it ran
    (to stop a second firing), under a random id when the cron is not unique; by then the job's own key is gone,
    so only an in-progress key whose job key still exists is work going on."""
    held = list(conn.scan_iter(match=arq_keys.in_progress_key_prefix + "*", count=1000))
    return [k for k in held
            if conn.exists(arq_keys.job_key_prefix + k.decode().removeprefix(arq_keys.in_progress_key_prefix))]


def cluster_env(tmp_path: Path, redis_url: str, github_double: GitHubDouble, scripted_model: ScriptedModel,
                **overrides: str) -> dict[str, str]:
    """The environment of a Mull cluster against the doubles; ``overrides`` add or replace variables."""
    return {
        "MULL_APP_ID": str(APP_ID),
        "MULL_WEBHOOK_SECRET": github_double.webhook_secret,
        "MULL_GITHUB_URL": github_double.url,
        "MULL_REDIS_URL": redis_url,
        "MULL_DATA_DIR": str(tmp_path / "data"),
        "MULL_LLM_BASE_URL": scripted_model.url,
        "MULL_LLM_MODEL": "scripted",
        "MULL_LLM_API_KEY": MODEL_KEY,
        "MULL_LOG_LEVEL": "DEBUG",
        "MULL_AGENT_MAX_STEPS": "6",
        "MULL_REVISION_QUIET": "2",
        "MULL_CRITIQUE_TIMEOUT": "10",
        **overrides,
    }


@pytest.fixture
def mull(tmp_path: Path, redis_url: str, github_double: GitHubDouble, scripted_model: ScriptedModel,
         app_keypair: tuple[str, str]) -> Iterator[MullCluster]:
    github_double.set_permission(REPO, MAINTAINER, "write")
    github_double.set_permission(REPO, READER, "read")
    cluster = start_cluster(tmp_path, github_double, cluster_env(tmp_path, redis_url, github_double,
                                                                 scripted_model, MULL_PRIVATE_KEY=app_keypair[0]))
    yield cluster
    cluster.stop()


@contextlib.contextmanager
def cluster_with(tmp_path: Path, redis_url: str, github_double: GitHubDouble, scripted_model: ScriptedModel,
                 app_keypair: tuple[str, str], **env: str) -> Iterator[MullCluster]:
    """``mull web`` and one ``mull worker`` with ``env`` (MULL_* settings) over the usual environment, the
    maintainer allowed to write; stopped at the end of the block."""
    github_double.set_permission(REPO, MAINTAINER, "write")
    cluster = start_cluster(tmp_path, github_double, cluster_env(tmp_path, redis_url, github_double, scripted_model,
                                                                 MULL_PRIVATE_KEY=app_keypair[0], **env))
    try:
        yield cluster
    finally:
        cluster.stop()


def start_cluster(tmp_path: Path, github_double: GitHubDouble, env: dict[str, str]) -> MullCluster:
    """``mull web`` with the double's webhook pointed at it, and one ``mull worker``."""
    cluster = MullCluster(tmp_path, env)
    cluster.context = lambda: "\nlast GitHub requests:\n" + "\n".join(
        f"{r.method} {r.path} {r.status}" for r in github_double.requests()[-15:])
    cluster.start_web()
    github_double.set_webhook(cluster.webhook_url)
    cluster.start_worker()
    return cluster


def answer_script(key: str, sleep: float = 0) -> list[dict]:
    first: dict[str, Any] = {"tool_calls": [{"name": "run_command", "arguments": {
        "command": "env; cat .git/config; git config --list; git remote -v; cat \"$GIT_DIR/config\""}}]}
    if sleep:
        first["sleep"] = sleep
    return [
        first,
        {"tool_calls": [{"name": "edit_file", "arguments": {
            "path": "src/widgets.py", "old": "return 41", "new": "return 42"}}]},
        {"tool_calls": [{"name": "finish", "arguments": {
            "summary": "Made answer() return 42, as the issue asks.", "not_done": ["Did not add a test."]}}]},
    ]


def status_comments(double: GitHubDouble, number: int) -> list:
    return [c for c in double.comments(REPO, number) if c.user.login == double.bot_login
            and "mull:status" in c.body]


def open_pulls(double: GitHubDouble) -> list:
    return [p for p in double.pulls(REPO) if double.issue(REPO, p.number).state == "open"]


def pr_opened(double: GitHubDouble, number: int) -> Any:
    comments = status_comments(double, number)
    return comments and '"phase":"pr-opened"' in comments[0].body and comments[0]


def secrets_of(double: GitHubDouble, app_keypair: tuple[str, str]) -> list[str]:
    key_body = app_keypair[0].splitlines()[1]
    return [t.token for t in double.tokens_minted] + [double.webhook_secret, key_body]
