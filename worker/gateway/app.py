"""The gateway's HTTP surface: three routes, each behind the run token, and JSON refusals for the rest.

A model request goes through, in order: the run token (401), the run's budgets (403, which clients do not
retry), a place in the run's queue (one request in flight, ``turns.MAX_WAITING`` more waiting; 429 beyond),
its turn, the budgets again (the answers before it may have spent them), then its step is counted and only
then is its body read (413 too large, 408 too slow, 400 not a JSON object). So every request that costs the
gateway a body to read and parse costs the run a step. The forwarder owns the upstream and the answer; the
turn is given back once the answer has been relayed and counted.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from worker.gateway import errors
from worker.gateway.anthropic_messages import AnthropicMessages
from worker.gateway.body import BODY_SECONDS, MAX_BODY, BodyRefused, read_json
from worker.gateway.dialect import Dialect
from worker.gateway.exchange import Exchange
from worker.gateway.forward import Forwarder
from worker.gateway.openai_chat import OpenAIChat
from worker.gateway.runs import Run, Runs
from worker.gateway.turns import HeldResponse, TurnsFull


def _token(request: Request) -> str | None:
    authorization = request.headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("x-api-key", "").strip() or None


class GatewayRoutes:
    """Route handlers bound to the gateway's runs and forwarder (no module-level state)."""

    def __init__(self, runs: Runs, forward: Forwarder, max_body: int = MAX_BODY,
                 body_seconds: float = BODY_SECONDS) -> None:
        self.runs = runs
        self.forward = forward
        self.max_body = max_body
        self.body_seconds = body_seconds
        self.openai: Dialect = OpenAIChat()
        self.anthropic: Dialect = AnthropicMessages()

    def authorize(self, request: Request) -> Run | Response:
        token = _token(request)
        if token is None:
            return errors.no_token()
        run = self.runs.find(token)
        return errors.bad_token() if run is None else run

    @staticmethod
    def _spent(exchange: Exchange) -> Response | None:
        """The budget refusal, if the run has spent one (no step is counted for it: there are none left)."""
        spent = exchange.run.grant.meter.spent()
        if spent is None:
            return None
        exchange.run.trip(spent)
        exchange.finish(403, refused=spent)
        return errors.budget_spent(spent)

    async def _model_request(self, request: Request, dialect: Dialect) -> Response:
        run = self.authorize(request)
        if isinstance(run, Response):
            return run
        exchange = Exchange(run, dialect, request.url.path, self.forward.log)
        refused = self._spent(exchange)
        if refused is not None:
            return refused
        try:
            release = await run.turns.take()
        except TurnsFull:
            run.grant.meter.requests += 1
            message = (f"this run already has a model request in flight and {run.turns.max_waiting} waiting: "
                       "the gateway answers a run's requests one at a time; wait for an answer before sending more")
            exchange.finish(429, error=message)
            return errors.refusal(429, "rate_limit_error", message)
        try:
            response = await self._in_turn(exchange, request)
        except BaseException:
            release()
            raise
        return HeldResponse(response, release)

    async def _in_turn(self, exchange: Exchange, request: Request) -> Response:
        refused = self._spent(exchange)
        if refused is not None:
            return refused
        exchange.run.grant.meter.requests += 1
        try:
            exchange.body, exchange.size = await read_json(request, self.max_body, self.body_seconds)
        except BodyRefused as exc:
            exchange.finish(exc.status, error=exc.message)
            return errors.refusal(exc.status, "invalid_request_error", exc.message, close=True)
        return await self.forward(exchange, request.headers)

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


def build_app(runs: Runs, forward: Forwarder, max_body: int = MAX_BODY,
              body_seconds: float = BODY_SECONDS) -> Starlette:
    routes = GatewayRoutes(runs, forward, max_body, body_seconds)
    handlers: dict[Any, Any] = {404: _not_found, 405: _not_found}
    return Starlette(routes=[
        Route("/v1/chat/completions", routes.chat_completions, methods=["POST"]),
        Route("/v1/messages", routes.messages, methods=["POST"]),
        Route("/v1/models", routes.models, methods=["GET"]),
    ], exception_handlers=handlers)
