"""The receiver's cheap filter: keeps what the worker acts on, never drops a trigger."""

from __future__ import annotations

import json

import pytest

from bot.intake import MalformedPayload, decide


def compact(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def pretty(payload: dict) -> bytes:
    return json.dumps(payload, indent=2).encode()


def labeled(label: str, sender: str = "octocat", on_issue: tuple[str, ...] = ()) -> dict:
    return {"action": "labeled", "label": {"name": label},
            "issue": {"number": 1, "labels": [{"name": n} for n in on_issue]}, "sender": {"login": sender}}


@pytest.mark.parametrize("encode", [compact, pretty])
def test_trigger_label_is_kept_in_any_formatting(encode) -> None:
    assert decide("issues", encode(labeled("mull")), "mull-app[bot]").store


@pytest.mark.parametrize("encode", [compact, pretty])
def test_any_label_is_kept_since_repos_choose_their_own_and_other_actions_dropped(encode) -> None:
    assert decide("issues", encode(labeled("agent-please")), None).store
    assert not decide("issues", encode({"action": "edited", "issue": {}}), None).store


def test_action_not_first_falls_back_to_a_parse() -> None:
    body = compact({"label": {"name": "mull"}, "action": "labeled", "sender": {"login": "a"}})
    assert decide("issues", body, None).store
    body = compact({"label": {"name": "bug"}, "action": "edited", "sender": {"login": "a"}})
    assert not decide("issues", body, None).store


def test_the_bots_own_label_changes_are_dropped() -> None:
    assert not decide("issues", compact(labeled("mull", sender="mull-app[bot]")), "mull-app[bot]").store


def test_non_ascii_label_is_decided_by_a_parse() -> None:
    body = json.dumps(labeled("🤖 agent")).encode()  # ensure_ascii escapes the emoji
    assert decide("issues", body, None).store


def test_closed_issues_are_kept_for_wakeups() -> None:
    assert decide("issues", compact({"action": "closed", "issue": {}}), None).store


@pytest.mark.parametrize(("text", "kept"), [("/mull snooze 3d", True), ("please /MULL retry", True),
                                            ("/mUlL go", True), ("/Mull", True), ("/mullet", False),
                                            ("lgtm", False), ("Mull did well, mull it over", False)])
def test_comments_are_kept_only_with_a_command(text, kept) -> None:
    body = compact({"action": "created", "comment": {"body": text}, "sender": {"login": "a"}})
    assert decide("issue_comment", body, None).store is kept


def test_branch_events_are_kept_only_for_mull_branches() -> None:
    assert decide("push", compact({"ref": "refs/heads/mull/issue-3"}), None).store
    assert not decide("push", compact({"ref": "refs/heads/main"}), None).store
    assert decide("push", compact({"ref": "refs/heads/main", "commits": [{"modified": [".github/mull.yml"]}]}),
                  None).store
    # "mull" elsewhere (a repository named after it) is not a Mull branch.
    assert not decide("push", compact({"ref": "refs/heads/main", "repository": {"full_name": "o/mull-tools"}}),
                      None).store
    assert decide("pull_request", compact({"action": "closed", "pull_request": {"head": {"ref": "x"}}}), None).store


def test_installation_events_are_always_kept_and_unknown_events_dropped() -> None:
    assert decide("installation", b'{"action":"created"}', None).store
    assert not decide("star", b'{"action":"created"}', None).store


@pytest.mark.parametrize(("event", "body"), [("issues", b'{"action":"labeled"'), ("issues", b"[]"),
                                             ("issue_comment", b"/mull"), ("push", b""),
                                             ("issues", b'{"action":[]}'), ("issues", b'{"action":{"x":1}}')])
def test_bodies_that_are_not_json_objects_are_refused(event, body) -> None:
    with pytest.raises(MalformedPayload):
        decide(event, body, None)


def test_plain_comments_are_kept_on_issues_waiting_or_snoozed() -> None:
    for label in ("mull:waiting", "mull:snoozed"):
        body = compact({"action": "created", "issue": {"labels": [{"name": label}]}, "comment": {"body": "news"},
                        "sender": {"login": "a"}})
        assert decide("issue_comment", body, None).store
    other = compact({"action": "created", "issue": {"labels": [{"name": "bug"}]}, "comment": {"body": "news"}})
    assert not decide("issue_comment", other, None).store
