"""Turning model-client errors and tool failures into the short text a status comment or a model reads.

Shared by the model runner (worker/agent/model_run.py) and the builtin agent's and critic's tools, so every
stage words failures the same way.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic_ai.exceptions import ModelHTTPError

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
