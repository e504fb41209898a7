"""A run's steps from the gateway's transcript: model turns, tool calls with what came back, commands with their
exit codes, in OpenAI (plain and streamed) and Anthropic form; records the agent garbled become no step."""

from __future__ import annotations

import json

from worker.sessions.transcript_steps import steps


def openai_record(content, calls, messages, usage=(10, 5), ms=200) -> dict:
    return {"protocol": "openai", "status": 200, "ms": ms, "request": {"messages": messages},
            "response": {"choices": [{"message": {"content": content, "tool_calls": [
                {"id": cid, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
                for cid, name, args in calls]}}]},
            "usage": {"input": usage[0], "output": usage[1], "estimated": False}}


def test_openai_turns_tool_calls_and_their_results_in_order() -> None:
    first = [{"role": "system", "content": "You are Mull's agent."}, {"role": "user", "content": "Fix issue #3"}]
    second = [*first, {"role": "assistant", "tool_calls": []},
              {"role": "tool", "tool_call_id": "c1", "content": "exit code 2\nFAILED test_x"},
              {"role": "tool", "tool_call_id": "c2", "content": "edited src/a.py"}]
    records = [
        openai_record("Let me run the tests.", [("c1", "run_command", {"command": "pytest -q"}),
                                                ("c2", "edit_file", {"path": "src/a.py", "old": "1", "new": "2"})],
                      first),
        openai_record("Done.", [], second, usage=(40, 3), ms=1200),
    ]
    found = steps(records)
    assert [s.kind for s in found] == ["note", "model", "command", "tool", "model"]
    prompt, turn, command, edit, last = found
    assert "Fix issue #3" in prompt.text and "You are Mull's agent." in prompt.text
    assert turn.text == "Let me run the tests." and (turn.input_tokens, turn.output_tokens, turn.ms) == (10, 5, 200)
    assert command.detail == "pytest -q" and command.exit_code == 2 and "FAILED test_x" in command.text
    assert edit.title == "edit_file" and '"path": "src/a.py"' in edit.detail and edit.text == "edited src/a.py"
    assert last.title == "Model turn 2" and last.output_tokens == 3


def test_time_per_step_model_answers_and_the_tool_call_between_them() -> None:
    first = {**openai_record("", [("c1", "run_command", {"command": "make"})], [], ms=1500.4),
             "time": "2026-12-03T10:00:00+00:00"}
    second = {**openai_record("done", [], [{"role": "tool", "tool_call_id": "c1", "content": "exit code 0"}],
                              ms=250.0), "time": "2026-12-03T10:00:09.500000+00:00"}
    turn, command, last = steps([first, second])
    assert turn.ms == 1500 and last.ms == 250
    assert command.ms == 8000  # 9.5 s between the requests, 1.5 s of it the model's answer
    garbled = steps([{**first, "time": "yesterday"}, {**second, "ms": "slow"}])
    assert garbled[1].ms is None and garbled[2].ms is None


def test_a_streamed_answer_and_a_call_the_run_never_answered() -> None:
    record = {"protocol": "openai", "status": 200, "request": {"messages": [{"role": "user", "content": "go"}]},
              "response": {"text": "streamed words", "tool_calls": [
                  {"id": "s1", "name": "bash", "arguments": '{"command": ["ls", "-la"]}'}],
                  "finish_reason": "tool_calls"},
              "usage": {"input": 3, "output": 4}}
    turn, command = steps([record])[1:]
    assert turn.text == "streamed words"
    assert command.kind == "command" and command.detail == "ls -la" and command.exit_code is None
    assert "run ended" in command.text


def test_anthropic_tool_use_and_tool_result_blocks() -> None:
    first = {"protocol": "anthropic", "status": 200, "request": {"system": "sys", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "task"}]}]},
        "response": {"content": [{"type": "text", "text": "reading"},
                                 {"type": "tool_use", "id": "t1", "name": "Read", "input": {"path": "a.py"}}]}}
    second = {"protocol": "anthropic", "status": 200, "request": {"messages": [
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                      "content": [{"type": "text", "text": "print(1)"}]}]}]},
        "response": {"content": [{"type": "text", "text": "ok"}]}}
    found = steps([first, second])
    assert found[0].text == "sys\n\ntask"
    assert found[1].text == "reading" and found[2].title == "Read" and found[2].text == "print(1)"


def test_refused_and_failed_requests_show_why() -> None:
    found = steps([{"status": 429, "request": None, "response": None, "refused": "steps (6)"},
                   {"status": 502, "request": None, "response": None, "error": "upstream unreachable"},
                   {"status": 500}])
    assert [s.error for s in found] == ["steps (6)", "upstream unreachable", "HTTP 500"]


def test_garbled_records_from_a_hostile_agent_do_not_break_the_page() -> None:
    garbage = [None, 7, "text", {"response": "not an object"}, {"response": {"choices": "x"}},
               {"response": {"choices": [{"message": {"tool_calls": [None, {"function": 3}]}}]}},
               {"request": {"messages": [None, {"role": "tool"}, {"content": [None, 5]}]},
                "response": {"content": [None, {"type": "tool_use"}]}, "usage": {"input": "many", "output": True}}]
    found = steps(garbage)  # type: ignore[arg-type]
    assert all(s.kind in ("model", "tool", "note") for s in found)
    assert found[-2].input_tokens is None and found[-2].output_tokens is None
