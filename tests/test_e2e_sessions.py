"""End to end: a run's session page. A `mull worker` with its own data directory records the run; a separate
`mull web` with another one shows it at the address the pull request links to, to people who sign in with GitHub
(the double's OAuth flow) and can see the repository, in a real browser (Debian's Chromium, by playwright):
the agent's hostile output inert, the model key never on the page, everyone else a 404."""

from __future__ import annotations

import re
import zlib
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import redis
from doubles.e2e import MAINTAINER, MODEL_KEY, cluster_env, open_pulls, pr_opened, status_comments, wait_for
from doubles.fixtures import REPO
from doubles.github import GitHubDouble
from doubles.model_server import ScriptedModel
from doubles.mull_process import MullCluster
from playwright.sync_api import Browser

from bot import keys

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

HOSTILE = "<script>document.title='pwned'</script>"
LINK = re.compile(r"\]\((http://127\.0\.0\.1:\d+/runs/([A-Za-z0-9._:-]+))\)")


def script(key: str) -> list[dict]:
    """An agent that prints the model's key and a script tag, then fixes the answer."""
    return [
        {"tool_calls": [{"name": "run_command", "arguments": {
            "command": f"echo 'key: {MODEL_KEY}'; echo \"{HOSTILE}\"; echo {key}"}}]},
        {"tool_calls": [{"name": "edit_file", "arguments": {
            "path": "src/widgets.py", "old": "return 41", "new": "return 42"}}]},
        {"tool_calls": [{"name": "finish", "arguments": {"summary": "Made answer() return 42.", "not_done": []}}]},
    ]


@pytest.fixture
def split_cluster(tmp_path: Path, redis_url: str, github_double: GitHubDouble, scripted_model: ScriptedModel,
                  app_keypair: tuple[str, str]):
    """`mull web` and `mull worker` with a data directory each, as on two machines sharing only Redis."""
    github_double.state.repo(REPO).private = True
    github_double.set_permission(REPO, MAINTAINER, "write")
    cluster = MullCluster(tmp_path, {})
    cluster.env.update(cluster_env(
        tmp_path, redis_url, github_double, scripted_model, MULL_PRIVATE_KEY=app_keypair[0],
        MULL_PUBLIC_URL=cluster.url, MULL_GITHUB_CLIENT_ID=github_double.oauth.client_id,
        MULL_GITHUB_CLIENT_SECRET=github_double.oauth.client_secret, MULL_SESSION_RETENTION_DAYS="2"))
    cluster.start_web(MULL_DATA_DIR=str(tmp_path / "web-data"))
    github_double.set_webhook(cluster.webhook_url)
    cluster.start_worker(MULL_DATA_DIR=str(tmp_path / "worker-data"))
    yield cluster
    cluster.stop()


def test_a_session_recorded_by_a_worker_is_shown_by_another_web_in_a_browser(
        split_cluster: MullCluster, github_double: GitHubDouble, scripted_model: ScriptedModel, redis_url: str,
        browser: Browser) -> None:
    scripted_model.script("SCRIPT-session", script("SCRIPT-session"))
    issue = github_double.create_issue(REPO, "Answer should be 42", "answer() returns 41. SCRIPT-session",
                                       author=MAINTAINER)
    assert github_double.label_issue(REPO, issue.number, "mull", MAINTAINER) == 202
    wait_for(lambda: pr_opened(github_double, issue.number), what="status: PR opened", cluster=split_cluster)

    body = github_double.issue(REPO, open_pulls(github_double)[0].number).body
    found = LINK.search(body)
    assert found, body
    url, run_id = found.groups()
    assert url.startswith(split_cluster.url + "/runs/implement-")
    assert url in status_comments(github_double, issue.number)[0].body
    stored = redis.Redis.from_url(redis_url)
    assert 86400 < stored.ttl(keys.session(run_id)) <= 2 * 86400
    raw = zlib.decompress(stored.get(keys.session(run_id)))
    assert MODEL_KEY.encode() not in raw and b"[redacted]" in raw  # no secret in Redis either
    assert not (Path(split_cluster.workdir) / "web-data" / "transcripts").exists()  # not read from a disk

    # Nobody signed in: the same 404 as a run that does not exist.
    assert httpx.get(url).status_code == 404
    assert httpx.get(split_cluster.url + "/runs/implement-0-nothing-0000000000").status_code == 404

    context = browser.new_context()
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    try:
        assert page.goto(url).status == 404
        with page.expect_navigation():
            page.click("text=Sign in with GitHub")
        assert urlsplit(page.url).path == "/login/oauth/authorize"  # the double's sign-in page
        page.fill("input[name=login]", MAINTAINER)
        with page.expect_navigation(url=url):
            page.click("button")
        html = page.content()
        assert page.title() == f"Mull run {run_id}"  # the agent's <script> did not run
        assert page.locator("script").count() == 0 and dialogs == []
        text = page.inner_text("body")
        assert "Model turn 1" in text and "run_command" in text and "edit_file" in text
        assert "exit code 0" in text and "src/widgets.py" in text
        assert re.search(r"\d+ tokens in, \d+ out · \d+\.\d s", text)  # tokens and time per model turn
        assert HOSTILE in text  # shown as text
        assert MODEL_KEY not in html and "[redacted]" in text
        assert github_double.oauth.traded == [MAINTAINER]
        # The critique's session is linked from its comment, and this viewer may see it too.
        critique = wait_for(lambda: next((c for c in github_double.comments(REPO, open_pulls(github_double)[0].number)
                                          if "mull:critique" in c.body and "/runs/critique-" in c.body), None),
                            what="critique comment with its session link", cluster=split_cluster)
        critique_url = LINK.search(critique.body).group(1)
        with page.expect_navigation():
            page.goto(critique_url)
        assert "critique" in page.inner_text("body")
    finally:
        context.close()

    # Someone without access to the private repository signs in: still 404, and nothing of the run shows.
    stranger = browser.new_context()
    page = stranger.new_page()
    try:
        page.goto(url)
        with page.expect_navigation():
            page.click("text=Sign in with GitHub")
        page.fill("input[name=login]", "mallory")
        with page.expect_navigation(url=url) as navigation:
            page.click("button")
        assert navigation.value is not None and navigation.value.status == 404
        assert "Model turn" not in page.content() and MODEL_KEY not in page.content()
    finally:
        stranger.close()
