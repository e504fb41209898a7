"""The status comment's marker: revisions survive reruns and Redis loss because GitHub holds them."""

from __future__ import annotations

from dataclasses import replace

from worker.views.status_comment import Phase, RunState, render


def test_a_new_trigger_is_a_new_revision_and_a_rerun_is_not() -> None:
    first = RunState(issue=3).begin("delivery-a")
    assert first.revision == 1
    assert first.begin("delivery-a") == first
    second = replace(first, pushed_sha="abc").begin("delivery-b")
    assert second.revision == 2 and second.pushed_sha is None


def test_marker_round_trips_through_the_comment_body() -> None:
    state = RunState(issue=3, phase=Phase.PR_OPENED, revision=2, trigger="g", pr=9, pushed_sha="f00",
                     note="detail text --> <b>", critique="Critique of #9: **pass**, effort 2")
    body = render(state)
    assert "revision 2" in body and "#9" in body and "detail text" in body and "Critique of #9: **pass**" in body
    assert RunState.from_body(3, body) == state
    assert body.count("-->") == 1  # the note's "-->" is neutralised; the only one closes the marker


def test_failed_status_says_how_to_retry() -> None:
    body = render(RunState(issue=1, phase=Phase.FAILED, revision=1))
    assert "comment `/mull retry`" in body
    assert "(revision" not in body


def test_foreign_or_broken_markers_are_ignored() -> None:
    assert RunState.from_body(1, "no marker here") is None
    assert RunState.from_body(1, "<!-- mull:status {not json} -->") is None
    assert RunState.from_body(1, '<!-- mull:status {"phase": "bogus"} -->') is None
