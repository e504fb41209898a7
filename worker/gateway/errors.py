"""The gateway's own refusals, shaped so that both OpenAI and Anthropic clients show their message.

OpenAI clients read ``error.message``; Anthropic clients expect ``{"type": "error", "error": {"type",
"message"}}``. One body satisfies both, so an agent, whichever SDK it uses, surfaces why it was refused.
"""

from __future__ import annotations

from starlette.responses import JSONResponse

ROUTES = "POST /v1/chat/completions, POST /v1/messages and GET /v1/models"


def refusal(status: int, kind: str, message: str, close: bool = False) -> JSONResponse:
    """``close``: end the connection after it (the request's body was left unread)."""
    headers = {"connection": "close"} if close else None
    return JSONResponse({"type": "error", "error": {"message": message, "type": kind, "code": kind}}, status,
                        headers)


def no_token() -> JSONResponse:
    return refusal(401, "authentication_error", "no run token: send the token Mull gave this run as "
                   "'Authorization: Bearer <token>' or 'x-api-key: <token>'")


def bad_token() -> JSONResponse:
    return refusal(401, "authentication_error", "the run token is not valid: it is wrong, or the run it "
                   "belongs to has ended; use the token Mull gave this run")


def budget_spent(budget: str) -> JSONResponse:
    return refusal(403, "budget_exhausted", f"this run's {budget} budget is spent: make no more model requests; "
                   "stop now, and Mull will keep the work done so far")


def not_found(method: str, path: str) -> JSONResponse:
    return refusal(404, "not_found", f"no route {method} {path}: the model gateway serves only {ROUTES}")
