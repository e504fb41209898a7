"""How a model run ended, as plain values: what the plan stage and the jobs read without loading the model stack.

The runner (``worker/agent/model_run.py``) imports pydantic-ai and the OpenAI SDK, a second of start-up; these
types do not, so a worker imports that only when a run starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Literal, TypeAlias, TypeVar

if TYPE_CHECKING:
    from pydantic_ai.messages import ModelMessage

OutputT = TypeVar("OutputT")

EndReason = Literal["timeout", "usage_limit", "model_error", "bad_output", "invalid_output", "run_error"]


@dataclass(frozen=True)
class Usage:
    steps: int  # model requests made
    tokens: int  # input + output tokens the model reported
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class Finished(Generic[OutputT]):
    output: OutputT
    usage: Usage
    messages: tuple[ModelMessage, ...] = ()  # the conversation, for the run's session page


@dataclass(frozen=True)
class Ended:
    """A run that stopped before its output. ``detail`` is one redacted line, per ``reason``:

    timeout: "wall clock (30 s)"; usage_limit: "steps (40)" or "tokens (400000)"; model_error: the failed
    request ("model endpoint returned HTTP 503: ..."); bad_output: what was malformed ("Tool 'edit_file'
    exceeded max retries count of 3"); invalid_output: what was still wrong with the output after the
    corrections it was allowed; run_error: anything else pydantic-ai gave up on.
    """

    reason: EndReason
    detail: str
    usage: Usage
    messages: tuple[ModelMessage, ...] = ()  # the conversation until it stopped, for the run's session page


RunOutcome: TypeAlias = Finished[OutputT] | Ended


class OutputRejected(Exception):
    """Raised by an output validator to end the run: the output is invalid and no correction is left.

    The message says what is wrong; the run ends as ``Ended("invalid_output", message)``.
    """
