"""End to end, as an attacker: a hostile agent on the real flow (label → sandboxed agent → Mull's commit and
push → PR against the GitHub double) tries every way out, and the legitimate part of its work still lands.

The agent (tests/agents/hostile_agent.py) knows Mull's layout the way someone who read the source would: the
paths of ``.env``, the key file, the data dir, the mirror and another run's tree; the addresses of Redis, the
GitHub API and the model. It reports what it saw into the tree (so the report arrives in the pull request) and
poisons every git file Mull might read. The test judges on the host: canaries, the evil remote, the mirror,
and every text that left Mull.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from doubles.e2e import MAINTAINER, MODEL_KEY, cluster_env, open_pulls, pr_opened, start_cluster, wait_for
from doubles.fixtures import REPO
from doubles.mull_process import MullCluster

pytestmark = pytest.mark.e2e

HOSTILE = Path(__file__).parent / "agents" / "hostile_agent.py"
PYTHON = os.path.realpath(sys.executable)


class CountingListener:
    """A TCP port on the host that only counts who connects: the attacker's server."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def attacker(tmp_path: Path) -> Iterator[CountingListener]:
    listener = CountingListener()
    yield listener
    listener.close()


def _host(tmp_path: Path, app_keypair: tuple[str, str], github_double) -> dict[str, Path]:
    """What an operator's machine holds: a .env in Mull's directory, a HOME with keys, the App key file."""
    secret = f"DOTENV-SECRET-{uuid.uuid4().hex}"
    (tmp_path / ".env").write_text(f"MULL_WEBHOOK_SECRET={github_double.webhook_secret}\n# {secret}\n")
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text(f"SSH-SECRET-{uuid.uuid4().hex}\n")
    key = tmp_path / "keys" / "app.pem"
    key.parent.mkdir()
    key.write_text(app_keypair[0])
    other = tmp_path / "data" / "repos" / "runs" / "someone-else-0000" / "tree"
    other.mkdir(parents=True)
    (other / "their-work.txt").write_text(f"OTHER-RUN-{uuid.uuid4().hex}\n")
    return {"home": home, "key": key, "other": other}


def _cluster(tmp_path: Path, redis_url: str, github_double, scripted_model, host: dict[str, Path],
             agent_command: str | None) -> MullCluster:
    github_double.set_permission(REPO, MAINTAINER, "write")
    env = cluster_env(tmp_path, redis_url, github_double, scripted_model, HOME=str(host["home"]),
                      MULL_PRIVATE_KEY_PATH=str(host["key"]),
                      MULL_SANDBOX_RO_PATHS=f"{sys.base_prefix}:{HOSTILE.parent}")
    if agent_command:
        env["MULL_AGENT_COMMAND"] = agent_command
    return start_cluster(tmp_path, github_double, env)


def _plan(tmp_path: Path, host: dict[str, Path], github_double, scripted_model, attacker: CountingListener,
          worker_pid: int, redis_url: str) -> dict:
    repo_id = github_double.state.repo(REPO).id
    mirror = tmp_path / "data" / "repos" / "mirrors" / f"{repo_id}.git"
    redis_port = redis_url.split("://", 1)[1].split("/", 1)[0] if redis_url.startswith("redis://") else \
        "127.0.0.1:6379"
    return {
        "legit": {"path": "src/widgets.py", "old": "return 41", "new": "return 42"},
        "canary": str(tmp_path / "canary"),
        "key_path": str(host["key"]),
        "env_file": str(tmp_path / ".env"),
        "mirror_guess": str(mirror),
        "evil_remote": f"http://127.0.0.1:{attacker.port}/evil.git",
        "read": [str(tmp_path / ".env"), str(host["home"] / ".ssh" / "id_rsa"), str(host["key"]),
                 str(tmp_path / "data"), str(host["other"] / "their-work.txt"), str(mirror / "config"),
                 f"/proc/{worker_pid}/environ", "/etc/shadow", str(Path.home())],
        "connect": [redis_port, github_double.url.split("://", 1)[1].split("/", 1)[0],
                    scripted_model.url.split("://", 1)[1].split("/", 1)[0], "169.254.169.254:80",
                    f"127.0.0.1:{attacker.port}"],
        "write": [str(mirror / "config"), str(tmp_path / "data" / "planted")],
    }


def _secrets(host: dict[str, Path], tmp_path: Path, github_double, app_keypair) -> list[str]:
    dotenv = (tmp_path / ".env").read_text().split("# ", 1)[1].strip()
    return [dotenv, (host["home"] / ".ssh" / "id_rsa").read_text().strip(),
            (host["other"] / "their-work.txt").read_text().strip(), app_keypair[0].splitlines()[1], MODEL_KEY,
            github_double.webhook_secret, *[t.token for t in github_double.tokens_minted]]


def _judge(tmp_path: Path, host: dict[str, Path], github_double, scripted_model, attacker: CountingListener,
           app_keypair, cluster: MullCluster, number: int) -> dict:
    wait_for(lambda: pr_opened(github_double, number), timeout=120, what="the pull request", cluster=cluster)
    pull = open_pulls(github_double)[0]
    files = github_double.branch_files(REPO, pull.head_ref)
    assert "return 42" in files["src/widgets.py"]  # the legitimate work landed
    report = json.loads(files["mull-attack-report.json"])

    # Nothing ran on the host and nothing reached the attacker's server, from Mull's git or from the agent.
    assert not (tmp_path / "canary").exists()
    assert attacker.connections == 0
    repo_id = github_double.state.repo(REPO).id
    mirror_config = (tmp_path / "data" / "repos" / "mirrors" / f"{repo_id}.git" / "config").read_text()
    assert "fsmonitor" not in mirror_config and "evil" not in mirror_config
    assert not (tmp_path / "data" / "planted").exists()

    # Nothing of Mull's was readable or reachable inside.
    # A directory on the way to a bind exists inside, holding nothing but that way (the Python under /root, the
    # tree under the data dir): its listing shows no name of the host's.
    ways = {str(tmp_path / "data"): ["repos"], str(Path.home()): [".pyenv"]}
    leaks = {path: seen for path, seen in report["reads"].items()
             if seen["ok"] and not set(seen.get("listing", ["?"])) <= set(ways.get(path, []))}
    assert leaks == {}, leaks
    assert {addr for addr, seen in report["connects"].items() if seen["ok"]} == set(), report["connects"]
    assert not any(name.startswith(("MULL_", "GITHUB_", "GH_")) for name in report["env"])
    assert all("MULL_" not in str(env) for env in report["procs"].values())

    # Mull's commit holds the tree's files only: no git metadata, links as links, no FIFO.
    paths = set(files)
    assert not any(part.lower() == ".git" for path in paths for part in path.split("/")), sorted(paths)
    assert "vendor/lib/code.py" in paths and "blocking.fifo" not in paths
    assert files["leak-key"] == str(host["key"])  # the link itself, never what it points at
    assert files["leak-env"] == str(tmp_path / ".env")

    # No secret in anything that left Mull or that it logged.
    outbound = json.dumps(files) + json.dumps([r["body"] for r in scripted_model.requests]) + \
        github_double.issue(REPO, pull.number).body + cluster.logs()
    for secret in _secrets(host, tmp_path, github_double, app_keypair):
        assert secret not in outbound
    return report


def test_hostile_cli_agent_escapes_nothing_and_its_work_still_lands(tmp_path, redis_url, github_double,
                                                                    scripted_model, app_keypair, attacker) -> None:
    host = _host(tmp_path, app_keypair, github_double)
    command = f"{PYTHON} -I {HOSTILE} --prompt-file {{prompt_file}} --summary-file {{summary_file}}"
    cluster = _cluster(tmp_path, redis_url, github_double, scripted_model, host, command)
    try:
        plan = _plan(tmp_path, host, github_double, scripted_model, attacker, cluster.workers[0].process.pid,
                     redis_url)
        issue = github_double.create_issue(REPO, "Answer should be 42",
                                           f"answer() returns 41.\n\nATTACK-PLAN: {json.dumps(plan)}\n",
                                           author=MAINTAINER)
        assert github_double.label_issue(REPO, issue.number, "mull", MAINTAINER) == 202
        report = _judge(tmp_path, host, github_double, scripted_model, attacker, app_keypair, cluster,
                        issue.number)
        # The agent's only way out is the gateway, and only with its run's token.
        assert report["gateway"] == {"no_token": {"status": 401}, "wrong_token": {"status": 401},
                                     "run_token": {"status": 200}}
        assert report["env"]["OPENAI_API_KEY"] != MODEL_KEY
    finally:
        cluster.stop()


def test_hostile_commands_of_the_builtin_agent_escape_nothing(tmp_path, redis_url, github_double, scripted_model,
                                                               app_keypair, attacker) -> None:
    host = _host(tmp_path, app_keypair, github_double)
    cluster = _cluster(tmp_path, redis_url, github_double, scripted_model, host, None)
    try:
        plan = _plan(tmp_path, host, github_double, scripted_model, attacker, cluster.workers[0].process.pid,
                     redis_url)
        command = f"{PYTHON} -I {HOSTILE} --plan '{json.dumps(plan)}'"
        scripted_model.script("SCRIPT-hostile", [
            {"tool_calls": [{"name": "run_command", "arguments": {"command": command}}]},
            {"tool_calls": [{"name": "finish", "arguments": {"summary": "Made answer() return 42."}}]},
        ])
        issue = github_double.create_issue(REPO, "Answer should be 42", "answer() returns 41. SCRIPT-hostile",
                                           author=MAINTAINER)
        assert github_double.label_issue(REPO, issue.number, "mull", MAINTAINER) == 202
        _judge(tmp_path, host, github_double, scripted_model, attacker, app_keypair, cluster, issue.number)
    finally:
        cluster.stop()
