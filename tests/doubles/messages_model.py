"""``MessagesModel``: a minimal Anthropic messages endpoint (``POST /v1/messages``), streamed or not.

Only what the gateway's tests need: it records each request's headers and body, answers every request with
the same text and usage, and when a message contains ``echo-headers`` answers with the request's headers
instead (an endpoint that leaks what it was sent).
"""

from __future__ import annotations

import json
import threading

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .server import BackgroundServer


def _event(kind: str, data: dict) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()


class MessagesModel:
    """``with MessagesModel(reply="hi", input_tokens=12, output_tokens=5) as model:``; clients use ``model.url``."""

    def __init__(self, reply: str = "hello from messages", input_tokens: int = 12, output_tokens: int = 5) -> None:
        self.reply, self.input_tokens, self.output_tokens = reply, input_tokens, output_tokens
        self._lock = threading.Lock()
        self._requests: list[dict] = []
        app = Starlette(routes=[Route("/v1/messages", self._messages, methods=["POST"])])
        self._server = BackgroundServer(app)
        self.url = f"{self._server.url}/v1"

    def __enter__(self) -> MessagesModel:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    @property
    def requests(self) -> list[dict]:
        """Every request: {"headers": {...}, "body": {...}}."""
        with self._lock:
            return list(self._requests)

    async def _messages(self, request: Request) -> Response:
        body = await request.json()
        with self._lock:
            self._requests.append({"headers": dict(request.headers), "body": body})
        text = self.reply
        if "echo-headers" in json.dumps(body.get("messages")):
            text = json.dumps(dict(request.headers))
        usage = {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}
        message = {"id": "msg_1", "type": "message", "role": "assistant", "model": body.get("model"),
                   "stop_reason": "end_turn", "content": [{"type": "text", "text": text}], "usage": usage}
        if not body.get("stream"):
            return JSONResponse(message)
        start = {**message, "content": [], "stop_reason": None,
                 "usage": {"input_tokens": self.input_tokens, "output_tokens": 1}}
        events = [_event("message_start", {"message": start}),
                  _event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
                  _event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": text}}),
                  _event("content_block_stop", {"index": 0}),
                  _event("message_delta", {"delta": {"stop_reason": "end_turn"},
                                           "usage": {"output_tokens": self.output_tokens}}),
                  _event("message_stop", {})]
        return StreamingResponse(iter(events), media_type="text/event-stream")
