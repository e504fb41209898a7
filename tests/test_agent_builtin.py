"""The builtin agent against a tiny scripted OpenAI-compatible server started in-test.

The server answers each chat-completion request with the scripted turn whose index is the number of
assistant messages already in the request, so the script is a list of the model's turns in order.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from doubles.gateway_rig import model_access
from doubles.sandboxes import gateway_socket, needs_bwrap
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from worker.agent.base import AgentResult, AgentTask, Budget
from worker.agent.builtin import BuiltinAgent
from worker.agent.sandbox import GATEWAY_PORT, SandboxSpec

Turn = list[tuple[str, Any]] | str  # tool calls (name, arguments as dict or raw string), or plain text
BUDGET = Budget(seconds=20, steps=20, tokens=100_000, command_seconds=10)
UNCONFINED = SandboxSpec(enabled=False)


@dataclass
class ScriptedModel:
    turns: list[Turn]
    delay: float = 0.0
    status: int = 200
    usage: tuple[int, int] = (100, 20)
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        waited = 0.0
        while waited < self.delay:  # stop early once the client gave up, so shutdown is quick
            if await request.is_disconnected():
                return Response(status_code=499)
            await asyncio.sleep(0.05)
            waited += 0.05
        if self.status != 200:
            return JSONResponse({"error": {"message": "upstream exploded"}}, status_code=self.status)
        turn = self.turns[min(sum(m["role"] == "assistant" for m in body["messages"]), len(self.turns) - 1)]
        if isinstance(turn, str):
            message: dict[str, Any] = {"role": "assistant", "content": turn}
        else:
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": f"call_{len(self.requests)}_{i}", "type": "function",
                 "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)}}
                for i, (name, args) in enumerate(turn)]}
        prompt, completion = self.usage
        return JSONResponse({
            "id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "message": message,
                         "finish_reason": "stop" if isinstance(turn, str) else "tool_calls"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion},
        })

    def tool_results(self) -> list[str]:
        """Every tool result the model was sent, in the last request."""
        return [m["content"] for m in self.requests[-1]["messages"] if m["role"] == "tool"]


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[tuple[uvicorn.Server, threading.Thread, socket.socket]] = []

    def start(model: ScriptedModel) -> ScriptedModel:
        app = Starlette(routes=[Route("/v1/chat/completions", model.chat, methods=["POST"])])
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off",
                                               timeout_graceful_shutdown=2))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.01)
        model.url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
        servers.append((server, thread, sock))
        return model

    yield start
    for server, thread, sock in servers:
        server.should_exit = True
        thread.join(5)
        sock.close()


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    (path / "app.py").write_text("def answer():\n    return 41\n")
    return path


def run(url: str, worktree: Path, budget: Budget = BUDGET, spec: SandboxSpec = UNCONFINED,
        api_key: str | None = "sk-test-secret") -> AgentResult:
    async def go() -> AgentResult:
        async with model_access(url, "scripted-model", budget.steps, budget.tokens, api_key=api_key) as access:
            return await BuiltinAgent(url).run(AgentTask(prompt="Fix answer()", worktree=worktree, sandbox=spec,
                                                         model=access), budget)

    return asyncio.run(go())


def finish(summary: str, not_done: list[str] | None = None) -> list[tuple[str, Any]]:
    return [("finish", {"summary": summary, "not_done": not_done or []})]


def test_edits_a_file_and_finishes(serve: Any, worktree: Path) -> None:
    model = serve(ScriptedModel([
        [("read_file", {"path": "app.py"})],
        [("edit_file", {"path": "app.py", "old": "return 41", "new": "return 42"})],
        [("run_command", {"command": "cat app.py"})],
        finish("Made `answer()` return 42.", ["did not add a test"]),
    ]))
    result = run(model.url, worktree)
    assert (worktree / "app.py").read_text() == "def answer():\n    return 42\n"
    assert result.summary == "Made `answer()` return 42."
    assert result.not_done == ("did not add a test",)
    assert result.error is None and result.budget_tripped is None
    assert result.steps == 4 and result.tokens == 4 * 120
    assert model.requests[0]["messages"][-1] == {"role": "user", "content": "Fix answer()"}
    assert {t["function"]["name"] for t in model.requests[0]["tools"]} == {
        "list_files", "read_file", "search", "edit_file", "write_file", "run_command", "finish"}
    results = model.tool_results()
    assert "return 41" in results[0] and results[1] == "edited app.py"
    assert results[2].startswith("exit code 0\n") and "return 42" in results[2]


def test_steps_budget_trips_and_written_files_stay(serve: Any, worktree: Path) -> None:
    model = serve(ScriptedModel([
        [("write_file", {"path": "notes/plan.md", "content": "step 1\n"})],
        [("edit_file", {"path": "app.py", "old": "41", "new": "42"})],
        [("list_files", {})],  # and never finishes
    ]))
    result = run(model.url, worktree, Budget(seconds=20, steps=4, tokens=100_000, command_seconds=10))
    assert result.budget_tripped == "steps (4)"
    assert result.error is None
    assert result.steps == 4 and len(model.requests) == 4
    assert (worktree / "notes" / "plan.md").read_text() == "step 1\n"
    assert "`notes/plan.md` (new)" in result.summary and "`app.py`" in result.summary
    assert "steps (4)" in result.summary
    assert result.not_done


def test_tokens_budget_trips(serve: Any, worktree: Path) -> None:
    model = serve(ScriptedModel([[("list_files", {})]], usage=(400, 100)))
    result = run(model.url, worktree, Budget(seconds=20, steps=50, tokens=1200, command_seconds=10))
    assert result.budget_tripped == "tokens (1200)"
    assert result.tokens == 1500 and result.steps == 3  # checked after each response, so it overshoots once


def test_wall_clock_trips_while_the_model_is_slow(serve: Any, worktree: Path) -> None:
    model = serve(ScriptedModel([finish("never arrives")], delay=10))
    started = time.monotonic()
    result = run(model.url, worktree, Budget(seconds=1, steps=10, tokens=100_000, command_seconds=10))
    assert time.monotonic() - started < 4
    assert result.budget_tripped == "wall clock (1 s)"
    assert result.error is None and result.summary


def _running(marker: str) -> bool:
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                return "State:\tZ" not in (entry / "status").read_text()
        except OSError:
            continue
    return False


def test_wall_clock_kills_a_running_command(serve: Any, worktree: Path) -> None:
    marker = f"100.{os.getpid()}7"
    model = serve(ScriptedModel([[("run_command", {"command": f"sleep {marker}"})], finish("done")]))
    result = run(model.url, worktree, Budget(seconds=1, steps=10, tokens=100_000, command_seconds=60))
    assert result.budget_tripped == "wall clock (1 s)"
    time.sleep(0.2)
    assert not _running(marker)


def test_command_timeout_is_reported_to_the_model(serve: Any, worktree: Path) -> None:
    model = serve(ScriptedModel([[("run_command", {"command": "echo begun; sleep 30"})], finish("gave up")]))
    result = run(model.url, worktree, Budget(seconds=20, steps=10, tokens=100_000, command_seconds=0.5))
    assert result.summary == "gave up"
    assert model.tool_results()[0].startswith("timed out after 0.5 s") and "begun" in model.tool_results()[0]


def test_model_server_down_is_an_error_not_an_exception(worktree: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends: nothing listens there
    result = run(f"http://127.0.0.1:{port}/v1", worktree)
    assert result.error is not None and result.error.startswith("model endpoint unreachable: ")
    assert "\n" not in result.error and "Traceback" not in result.error
    assert result.budget_tripped is None and result.steps == 0
    assert result.summary


def test_http_5xx_is_an_error_without_the_api_key(serve: Any, worktree: Path) -> None:
    model = serve(ScriptedModel([finish("x")], status=503))
    result = run(model.url, worktree)
    assert result.error == "model endpoint returned HTTP 503: upstream exploded"
    assert len(model.requests) == 2  # one retry, not the SDK's default two
    assert "sk-test-secret" not in result.summary


def test_malformed_tool_arguments_end_in_an_error(serve: Any, worktree: Path) -> None:
    model = serve(ScriptedModel([[("edit_file", "{not json")]]))
    result = run(model.url, worktree)
    assert result.error is not None and result.error.startswith("model returned malformed output: ")
    assert "edit_file" in result.error
    assert "json_invalid" in model.tool_results()[0]  # the model was told what was wrong before giving up


def test_malformed_arguments_once_then_recovers(serve: Any, worktree: Path) -> None:
    model = serve(ScriptedModel([[("edit_file", {"path": "app.py"})], finish("recovered")]))
    result = run(model.url, worktree)
    assert result.summary == "recovered" and result.error is None


def test_path_escape_goes_back_to_the_model_and_the_run_continues(serve: Any, worktree: Path) -> None:
    model = serve(ScriptedModel([
        [("write_file", {"path": "../escaped.txt", "content": "x"}), ("read_file", {"path": "/etc/passwd"})],
        [("edit_file", {"path": ".git/config", "old": "a", "new": "b"})],
        [("write_file", {"path": "ok.txt", "content": "fine\n"})],
        finish("wrote ok.txt"),
    ]))
    result = run(model.url, worktree)
    assert result.summary == "wrote ok.txt" and result.error is None
    assert not (worktree.parent / "escaped.txt").exists()
    assert (worktree / "ok.txt").read_text() == "fine\n"
    results = model.tool_results()
    assert results[0] == ("error: path '../escaped.txt' is outside the repository; "
                          "use a path relative to the repository root")
    assert "outside the repository" in results[1]
    assert "inside .git" in results[2]


@needs_bwrap
def test_builtin_commands_have_no_way_out_even_with_a_gateway_socket(serve: Any, worktree: Path) -> None:
    """Mull makes the builtin agent's model calls; the commands it runs (the repository's tests) reach nothing."""
    with socket.socket() as listener, gateway_socket() as gateway:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        # bash's /dev/tcp: no interpreter needed inside the sandbox
        probe = (f"bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}' && echo reached; "
                 f"bash -c 'exec 3<>/dev/tcp/127.0.0.1/{GATEWAY_PORT}' && echo gateway; exit 1")
        model = serve(ScriptedModel([[("run_command", {"command": probe})], finish("probed")]))
        run(model.url, worktree, spec=SandboxSpec(enabled=True, gateway_socket=gateway))
    output = model.tool_results()[0]
    assert output.startswith("exit code 1\n") and "reached" not in output and "gateway" not in output
    assert "/dev/tcp" in output, output
