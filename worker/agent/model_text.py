"""Turning model-client errors and tool failures into the short text a status comment or a model reads.

Shared by the builtin agent, the critic and the planner, so every stage words failures the same way.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic_ai.exceptions import ModelAPIError, ModelConnectionError, ModelHTTPError, ModelTimeoutError

from worker.agent.workspace import WorkspaceError

ERROR_CHARS = 300


def one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= ERROR_CHARS else line[:ERROR_CHARS] + "…"


def root_cause(exc: BaseException) -> str:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return str(exc) or type(exc).__name__


def body_message(exc: ModelHTTPError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        return str(error)
    return str(body) if body else exc.message


def tool_result(operation: Callable[[], str]) -> str:
    """Run a file tool; a refused path or a failed read goes back to the model as text, not an exception."""
    try:
        return operation()
    except WorkspaceError as exc:
        return f"error: {exc}"
    except OSError as exc:
        return f"error: {exc.strerror or exc}"


def describe_model_error(exc: ModelAPIError, endpoint: str) -> str:
    """One line for a failed model request, naming ``endpoint`` (MULL_LLM_BASE_URL), never a key.

    Requests go through Mull's gateway, so the endpoint being down arrives as the gateway's 502/504
    ``upstream_error``; it is worded as the endpoint's failure, which is what the operator must fix.
    """
    upstream = _gateway_error_type(exc) == "upstream_error"
    if isinstance(exc, ModelTimeoutError) or (upstream and isinstance(exc, ModelHTTPError) and
                                              exc.status_code == 504):
        return f"model endpoint did not answer in time: {endpoint}"
    if isinstance(exc, ModelConnectionError):
        return f"model gateway unreachable ({one_line(root_cause(exc))}): this is a bug in Mull, please report it"
    if upstream and isinstance(exc, ModelHTTPError):
        return f"model endpoint unreachable: {endpoint} ({one_line(body_message(exc))})"
    if isinstance(exc, ModelHTTPError):
        return f"model endpoint returned HTTP {exc.status_code}: {one_line(body_message(exc))}"
    return f"model request failed: {one_line(exc.message)}"


def _gateway_error_type(exc: ModelAPIError) -> str | None:
    """The gateway's error ``type``; the OpenAI SDK hands over the body's ``error`` object, or the whole body."""
    body = exc.body if isinstance(exc, ModelHTTPError) else None
    error = body.get("error", body) if isinstance(body, dict) else None
    return str(error.get("type")) if isinstance(error, dict) else None
