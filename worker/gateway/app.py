"""The gateway's HTTP surface: three routes, each behind the run token, and JSON refusals for the rest.

Everything here is about refusing early and saying why: no or wrong token (401), a body too large (413) or
not a JSON object (400), an unknown route (404). Only a request that passes all of that reaches the
forwarder, which owns budgets, the upstream and the transcript.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from worker.gateway import errors
from worker.gateway.anthropic_messages import AnthropicMessages
from worker.gateway.dialect import Dialect
from worker.gateway.forward import Forwarder
from worker.gateway.openai_chat import OpenAIChat
from worker.gateway.runs import Run, Runs

MAX_BODY = 8 * 1024 * 1024  # a long agent conversation is a few hundred KB; 8 MB leaves room for images


def _token(request: Request) -> str | None:
    authorization = request.headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("x-api-key", "").strip() or None


class GatewayRoutes:
    """Route handlers bound to the gateway's runs and forwarder (no module-level state)."""

    def __init__(self, runs: Runs, forward: Forwarder, max_body: int = MAX_BODY) -> None:
        self.runs = runs
        self.forward = forward
        self.max_body = max_body
        self.openai: Dialect = OpenAIChat()
        self.anthropic: Dialect = AnthropicMessages()

    def authorize(self, request: Request) -> Run | Response:
        token = _token(request)
        if token is None:
            return errors.no_token()
        run = self.runs.find(token)
        return errors.bad_token() if run is None else run

    async def _body(self, request: Request) -> dict[str, Any] | Response:
        too_large = errors.refusal(413, "invalid_request_error", f"request body over {self.max_body} bytes: "
                                   "send a shorter conversation (drop old tool output)")
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return too_large
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body:
                return too_large
            chunks.append(chunk)
        try:
            body = orjson.loads(b"".join(chunks))
        except orjson.JSONDecodeError:
            return errors.refusal(400, "invalid_request_error", "request body is not valid JSON: send the "
                                  "request as a JSON object with Content-Type: application/json")
        if not isinstance(body, dict):
            return errors.refusal(400, "invalid_request_error",
                                  f"request body is a JSON {type(body).__name__}, not an object: send a JSON "
                                  "object with model and messages")
        return body

    async def _model_request(self, request: Request, dialect: Dialect) -> Response:
        run = self.authorize(request)
        if isinstance(run, Response):
            return run
        body = await self._body(request)
        if isinstance(body, Response):
            return body
        return await self.forward(run, dialect, request.url.path, body, request.headers)

    async def chat_completions(self, request: Request) -> Response:
        return await self._model_request(request, self.openai)

    async def messages(self, request: Request) -> Response:
        return await self._model_request(request, self.anthropic)

    async def models(self, request: Request) -> Response:
        """The run's model only: agents that list models find the one they may use, without an upstream call."""
        run = self.authorize(request)
        if isinstance(run, Response):
            return run
        model = {"id": run.grant.model, "object": "model", "created": 0, "owned_by": "mull",
                 "type": "model", "display_name": run.grant.model}
        return JSONResponse({"object": "list", "data": [model]})


async def _not_found(request: Request, exc: Exception) -> Response:
    return errors.not_found(request.method, request.url.path)


def build_app(runs: Runs, forward: Forwarder, max_body: int = MAX_BODY) -> Starlette:
    routes = GatewayRoutes(runs, forward, max_body)
    handlers: dict[Any, Any] = {404: _not_found, 405: _not_found}
    return Starlette(routes=[
        Route("/v1/chat/completions", routes.chat_completions, methods=["POST"]),
        Route("/v1/messages", routes.messages, methods=["POST"]),
        Route("/v1/models", routes.models, methods=["GET"]),
    ], exception_handlers=handlers)
