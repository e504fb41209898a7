"""``ScriptedModel``: an OpenAI-compatible chat completions server that plays back scripted turns.

Stateless per conversation so concurrent agent runs don't interfere: the script is chosen by a key found
in the request's messages, and the turn is the number of assistant messages already sent. Run standalone
with ``python -m tests.doubles.model_server --port N`` for benchmarks and manual runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import threading
import time
import uuid

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .server import BackgroundServer

TURN_KINDS = ("tool_calls", "content", "raw_arguments", "status", "echo_headers")


def _text(content: object) -> str:
    """Text of a message ``content``: a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return ""


def _message_chars(message: dict) -> int:
    functions = [c.get("function", {}) for c in message.get("tool_calls") or []]
    return len(_text(message.get("content"))) + sum(
        len(f.get("name", "")) + len(f.get("arguments", "")) for f in functions)


def validate_turns(turns: list[dict]) -> list[dict]:
    if not isinstance(turns, list) or not turns:
        raise ValueError("a script needs at least one turn")
    for turn in turns:
        if not isinstance(turn, dict) or not any(k in turn for k in TURN_KINDS):
            raise ValueError(f"a turn needs one of {TURN_KINDS} (plus optional sleep/usage/meet): {turn!r}")
    return copy.deepcopy(turns)


class Meeting:
    """The first ``count`` requests of a ``meet`` turn wait for one another (or ``timeout`` s), then all answer:
    runs that may overlap are made to, whatever the machine's speed; runs that may not time out one by one."""

    def __init__(self, count: int, timeout: float) -> None:
        self.count = count
        self.timeout = timeout
        self.arrived = 0
        self.everyone: asyncio.Event | None = None  # made on the server's loop, at the first arrival

    async def attend(self) -> None:
        if self.arrived >= self.count:  # the meeting is over: later runs pass
            return
        self.arrived += 1
        self.everyone = self.everyone or asyncio.Event()
        if self.arrived == self.count:
            self.everyone.set()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.everyone.wait(), self.timeout)


class Scripts:
    """Registered scripts (in registration order), their meetings, and every request seen."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.scripts: dict[str, list[dict]] = {}
        self.requests: list[dict] = []
        self.meetings: dict[str, Meeting] = {}

    def add(self, key: str, turns: list[dict]) -> None:
        checked = validate_turns(turns)
        with self.lock:
            self.scripts[key] = checked

    def match(self, messages: list[dict]) -> tuple[str, list[dict]] | None:
        texts = [_text(m.get("content")) for m in messages if isinstance(m, dict)]
        with self.lock:
            for key, turns in self.scripts.items():
                if any(key in text for text in texts):
                    return key, turns
        return None

    def meeting(self, meet: dict) -> Meeting:
        with self.lock:
            return self.meetings.setdefault(meet["match"], Meeting(int(meet["count"]),
                                                                   float(meet.get("timeout", 60))))

    def reset(self) -> None:
        with self.lock:
            self.scripts.clear()
            self.requests.clear()
            self.meetings.clear()


def _reply(turn: dict, first_call: int) -> tuple[dict, str, int]:
    """(assistant message, finish_reason, completion chars) for a content/tool-call turn."""
    message: dict = {"role": "assistant", "content": turn.get("content"), "refusal": None}
    calls = [(c["name"], json.dumps(c.get("arguments", {}))) for c in turn.get("tool_calls", [])]
    if "raw_arguments" in turn:
        calls.append((turn["raw_arguments"]["name"], str(turn["raw_arguments"]["arguments"])))
    if calls:
        message["tool_calls"] = [{"id": f"call_{first_call + i}", "type": "function",
                                  "function": {"name": name, "arguments": args}}
                                 for i, (name, args) in enumerate(calls)]
    chars = len(message["content"] or "") + sum(len(n) + len(a) for n, a in calls)
    return message, "tool_calls" if calls else "stop", chars


def _sse(chunk: dict) -> bytes:
    return f"data: {json.dumps(chunk)}\n\n".encode()


def _stream(base: dict, message: dict, finish: str, usage: dict, include_usage: bool):
    """The reply as ``chat.completion.chunk`` events, the way OpenAI streams it."""
    def chunk(delta: dict, finish_reason: str | None = None, **extra: object) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        return _sse({**base, "object": "chat.completion.chunk", "choices": [choice], **extra})

    yield chunk({"role": "assistant", "content": ""})
    if message.get("content"):
        yield chunk({"content": message["content"]})
    for index, call in enumerate(message.get("tool_calls", [])):
        yield chunk({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                     "function": {"name": call["function"]["name"], "arguments": ""}}]})
        arguments = call["function"]["arguments"]
        yield chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments}}]})
    if include_usage:
        yield chunk({}, finish)
        yield _sse({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage})
    else:
        yield chunk({}, finish, usage=usage)
    yield b"data: [DONE]\n\n"


def _key_refused(request: Request) -> Response | None:
    """With an ``api_key`` set, a request without ``Authorization: Bearer <key>`` gets OpenAI's 401."""
    key = request.app.state.api_key
    if key is None or request.headers.get("authorization") == f"Bearer {key}":
        return None
    return JSONResponse({"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error",
                                   "code": "invalid_api_key"}}, 401)


async def chat_completions(request: Request) -> Response:
    scripts: Scripts = request.app.state.scripts
    refused = _key_refused(request)
    try:
        body = await request.json()
    except ValueError:
        return JSONResponse({"error": {"message": "invalid JSON", "type": "invalid_request_error"}}, 400)
    messages = body.get("messages") or []
    record = {"key": None, "turn": None, "at": time.monotonic(), "body": body,
              "authorization": request.headers.get("authorization")}
    with scripts.lock:
        scripts.requests.append(record)
    if refused is not None:
        return refused
    found = scripts.match(messages)
    if found is None:
        return JSONResponse({"error": {"message": "no script matches", "type": "invalid_request_error",
                                       "code": "no_script"}}, 400)
    key, turns = found
    assistants = [m for m in messages if m.get("role") == "assistant"]
    index = len(assistants)
    record.update(key=key, turn=index)
    turn = dict(turns[min(index, len(turns) - 1)])
    meet = turn.pop("meet", None)  # {"match": text in the first two messages, "count": n, "timeout": s}
    if meet and meet["match"] in json.dumps(messages[:2]):
        await scripts.meeting(meet).attend()
    if "sleep" in turn:
        await asyncio.sleep(float(turn.pop("sleep")))
    if turn.pop("echo_headers", False):  # an endpoint that repeats what it was sent, credentials included
        echoed = json.dumps(dict(request.headers))
        if "status" in turn:
            turn["body"] = {"error": {"message": f"bad headers: {echoed}", "type": "invalid_request_error"}}
        else:
            turn["content"] = echoed
    if "status" in turn:
        error = {"error": {"message": f"scripted error {turn['status']}", "type": "server_error"}}
        return JSONResponse(turn.get("body", error), int(turn["status"]))
    first_call = sum(len(m.get("tool_calls") or []) for m in assistants)
    message, finish, completion_chars = _reply(turn, first_call)
    prompt = sum(_message_chars(m) for m in messages if isinstance(m, dict)) // 4
    usage = {"prompt_tokens": prompt, "completion_tokens": completion_chars // 4,
             "total_tokens": prompt + completion_chars // 4}
    usage.update(turn.get("usage", {}))
    base = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "created": int(time.time()),
            "model": body.get("model", "scripted"), "system_fingerprint": "fp_scripted"}
    if body.get("stream"):
        include = bool((body.get("stream_options") or {}).get("include_usage"))
        events = _stream(base, message, finish, usage, include)
        return StreamingResponse(events, media_type="text/event-stream")
    choice = {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
    return JSONResponse({**base, "object": "chat.completion", "usage": usage, "choices": [choice]})


async def list_models(request: Request) -> Response:
    refused = _key_refused(request)
    if refused is not None:
        return refused
    name = request.app.state.model_name
    return JSONResponse({"object": "list", "data": [{"id": name, "object": "model", "created": 0,
                                                     "owned_by": "mull-tests"}]})


async def register_script(request: Request) -> JSONResponse:
    body = await request.json()
    try:
        request.app.state.scripts.add(body["key"], body["turns"])
    except (KeyError, TypeError, ValueError) as exc:
        return JSONResponse({"error": {"message": f"bad script: {exc}"}}, 400)
    return JSONResponse({"ok": True, "key": body["key"]}, 201)


async def get_requests(request: Request) -> JSONResponse:
    scripts: Scripts = request.app.state.scripts
    with scripts.lock:
        return JSONResponse(list(scripts.requests))


async def reset(request: Request) -> JSONResponse:
    request.app.state.scripts.reset()
    return JSONResponse({"ok": True})


def build_app(scripts: Scripts, model_name: str = "scripted", api_key: str | None = None) -> Starlette:
    app = Starlette(routes=[
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/models", list_models),
        Route("/_scripts", register_script, methods=["POST"]),
        Route("/_requests", get_requests),
        Route("/_reset", reset, methods=["POST"]),
    ])
    app.state.scripts = scripts
    app.state.model_name = model_name
    app.state.api_key = api_key
    return app


class ScriptedModel:
    """``with ScriptedModel() as model: model.script("issue-7", [...])``; point clients at ``model.url``."""

    def __init__(self, model_name: str = "scripted", host: str = "127.0.0.1", port: int = 0,
                 api_key: str | None = None) -> None:
        self.scripts = Scripts()
        self.model_name = model_name
        self._server = BackgroundServer(build_app(self.scripts, model_name, api_key), host, port)
        self.base_url = self._server.url
        self.url = f"{self.base_url}/v1"

    def start(self) -> ScriptedModel:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> ScriptedModel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def script(self, key: str, turns: list[dict]) -> None:
        """Play ``turns`` to any conversation whose messages contain ``key``."""
        self.scripts.add(key, turns)

    def reset(self) -> None:
        self.scripts.reset()

    @property
    def requests(self) -> list[dict]:
        """Every request: {"key", "turn", "at" (monotonic seconds), "body" (the full JSON), "authorization"}."""
        with self.scripts.lock:
            return list(self.scripts.requests)

    def requests_for(self, key: str) -> list[dict]:
        return [r for r in self.requests if r["key"] == key]


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--model-name", default="scripted")
    parser.add_argument("--scripts", help="JSON file of {key: [turns]} to register at start")
    args = parser.parse_args(argv)
    scripts = Scripts()
    if args.scripts:
        with open(args.scripts) as fh:
            for key, turns in json.load(fh).items():
                scripts.add(key, turns)
    uvicorn.run(build_app(scripts, args.model_name), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
