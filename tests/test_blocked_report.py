"""The pull request's report of blocked network requests: every refused host, counted, and inert."""

from __future__ import annotations

from worker.agent.base import AgentResult
from worker.github.pull_requests import BLOCKED_LISTED, MULL_MARKERS, render_body


def body_with(blocked: tuple[tuple[str, int], ...]) -> str:
    return render_body(7, AgentResult("Did it.", (), None, None, steps=1, tokens=10, blocked=blocked), 1, "ann")


def test_refused_hosts_are_listed_with_their_counts() -> None:
    body = body_with((("evil.test:443", 3), ("[::1]:8080", 1)))
    section = body.split("## Blocked network requests", 1)[1]
    assert "- `evil.test:443` × 3\n- `[::1]:8080` × 1" in section
    assert "`network.allow`" in section and "MULL_SANDBOX_ALLOW_HOSTS" in section


def test_no_refusals_no_section() -> None:
    assert "Blocked network requests" not in body_with(())


def test_a_hostile_target_cannot_mention_close_or_break_out_of_its_code_span() -> None:
    """The proxy counts only host names and addresses; should anything else get here, it stays inert."""
    body = body_with((("x`@octocat Closes #3\n<!-- mull:status --> ![i](https://e.test/p.png)`:443", 1),))
    section = body.split("## Blocked network requests", 1)[1]
    line = next(line for line in section.splitlines() if line.startswith("- `"))
    assert line == "- `x??octocat?Closes??3???--?mull:status?--???[i]?https:??e.test?p.png??:443` × 1"
    assert body.count("<!--") == len(MULL_MARKERS) and "@" not in section.split("<sub>", 1)[0]


def test_a_long_list_is_cut_and_the_rest_summed() -> None:
    blocked = tuple((f"host{n}.test:443", 2) for n in range(BLOCKED_LISTED + 5))
    body = body_with(blocked)
    assert f"`host{BLOCKED_LISTED - 1}.test:443` × 2" in body and f"host{BLOCKED_LISTED}.test" not in body
    assert "… and 5 more hosts, 10 requests" in body
