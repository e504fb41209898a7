"""What Mull shows of a repository's setup and test runs: a verdict line and the output's tail, collapsed.

The output is the repository's code speaking (and the agent's, for tests): it may print a mention, a closing
keyword, a forged Mull marker or a credential. So the tail is already scrubbed of credentials
(``worker/agent/project_commands.py``), and here it goes into a code block whose fence is longer than any run of
backticks in it (it cannot close the block early), with mentions and HTML comment openers broken by an invisible
joiner as well: nothing in it pings, hides text or reads as a marker, wherever the text ends up.
"""

from __future__ import annotations

import re

from worker.agent.project_commands import ProjectRun
from worker.github.pull_requests import blocked_report
from worker.views.defuse import ZWJ

CONFIG = "`.github/mull.yml`"
_BACKTICKS = re.compile(r"`+")


def inert(text: str) -> str:
    """``text`` for inside a code block: no mention, no HTML comment opener or closer."""
    return text.replace("@", "@" + ZWJ).replace("<!--", "<" + ZWJ + "!--").replace("-->", "--" + ZWJ + ">")


def code_span(text: str) -> str:
    """``text`` (one line) as a code span no backtick in it can end."""
    flat = inert(" ".join(text.split()))
    longest = max((len(run) for run in _BACKTICKS.findall(flat)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{ticks}{pad}{flat}{pad}{ticks}"


def output_block(summary: str, tail: str) -> str:
    """A collapsed block titled ``summary`` (Mull's words) holding ``tail`` verbatim but inert."""
    body = inert(tail) or "(no output)"
    longest = max((len(run) for run in _BACKTICKS.findall(body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"<details><summary>{summary}</summary>\n\n{fence}text\n{body}\n{fence}\n\n</details>"


def setup_failed(run: ProjectRun, budget: float) -> str:
    """The status comment's note when setup failed: what, its output, and how to fix it."""
    return "\n\n".join([
        f"**Setup failed**: {code_span(run.command)} {run.how(budget)}, so the agent did not run.",
        output_block("Last lines of its output", run.tail),
        *([blocked_report(run.blocked)] if run.blocked else []),
        f"Fix the `setup:` commands in {CONFIG} on the default branch (they run one after another in the "
        "repository's tree, inside Mull's sandbox, reaching only the hosts `network.allow` and the operator "
        "allow; `setup_timeout` is their budget in seconds), then comment `/mull retry`.",
    ])


def tests_line(run: ProjectRun | None, command: str | None, budget: float | None = None) -> str:
    """The pull request's line about Mull's own test run (``command`` None: the repository set no ``test:``)."""
    if command is None:
        return f"**Tests:** no test command (set `test:` in {CONFIG} and Mull runs it on every change)."
    if run is None:
        return f"**Tests:** not run ({code_span(command)}): the agent changed nothing to test."
    if run.ok:
        return f"**Tests:** passed ({code_span(run.command)}, {run.seconds:.0f} s)."
    verdict = "did not finish" if run.timed_out else "failed"
    return "\n\n".join([f"**Tests:** {verdict} ({code_span(run.command)}, {run.how(budget)}).",
                        output_block("Last lines of the test output", run.tail)])
