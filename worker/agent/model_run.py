"""One way to run a pydantic-ai agent, for the builtin agent, the critic and the plan alike.

Mull, not the model, bounds every run: steps and tokens through pydantic-ai's usage limits, the wall clock
through ``asyncio.timeout``. Every way a run can end short of a bug in Mull is a value, ``Finished`` with the
output or ``Ended`` with why, so each caller words an ending its own way but none of them handles pydantic-ai's
exceptions. An ending's ``detail`` is one line with every secret the route knows of, and anything shaped
like a credential, removed before it is cut short: endpoints echo requests, and the line goes to GitHub.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_ai import Agent, ModelRetry, RunUsage, UsageLimitExceeded, UsageLimits, capture_run_messages
from pydantic_ai.exceptions import (
    AgentRunError,
    ModelAPIError,
    ModelConnectionError,
    ModelHTTPError,
    ModelTimeoutError,
    ToolRetryError,
    UnexpectedModelBehavior,
)
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.settings import ModelSettings

from bot.redaction import Redactor
from worker.agent.base import Budget, ModelAccess, format_seconds
from worker.agent.chat_model import MAX_REQUEST_SECONDS, chat_model, gateway_model
from worker.agent.model_text import body_message, one_line, root_cause
from worker.agent.run_outcome import Ended, EndReason, Finished, OutputRejected, RunOutcome, Usage

DepsT = TypeVar("DepsT")
OutputT = TypeVar("OutputT")

_OUTPUT_RETRIES_EXHAUSTED = "Exceeded maximum output retries"  # pydantic-ai's words; no exception class says it
_PROBLEMS_SHOWN = 3


@dataclass(frozen=True)
class ModelRoute:
    """Which way a run's requests go, which endpoint its errors name, and which secrets they must never show.

    ``through_gateway``: Mull's model gateway over its unix socket, with the run's token (the builtin agent,
    the critic). ``direct``: the endpoint itself with the real key (the plan, which runs outside any gateway run).
    """

    endpoint: str  # MULL_LLM_BASE_URL: named in error messages
    model_name: str
    access: ModelAccess | None = None  # set through the gateway
    api_key: str | None = field(default=None, repr=False)  # set direct

    @classmethod
    def through_gateway(cls, access: ModelAccess, endpoint: str) -> ModelRoute:
        return cls(endpoint=endpoint, model_name=access.model, access=access)

    @classmethod
    def direct(cls, base_url: str, api_key: str | None, model: str) -> ModelRoute:
        if not base_url.strip():
            raise ValueError("no model endpoint to call: set MULL_LLM_BASE_URL to an OpenAI-compatible base URL")
        if not model.strip():
            raise ValueError("no model name to ask for: set MULL_LLM_MODEL (or the stage's model in the config)")
        return cls(endpoint=base_url, model_name=model, api_key=api_key)

    @property
    def via_gateway(self) -> bool:
        return self.access is not None

    def redactor(self) -> Redactor:
        """Knows the route's credential: the run's gateway token, or the endpoint's key."""
        return Redactor([self.access.token if self.access is not None else self.api_key or ""])

    def tripped(self) -> str | None:
        """The budget the gateway counted out before pydantic-ai did ("steps (40)"); None direct."""
        return self.access.grant.usage.tripped if self.access is not None else None

    @asynccontextmanager
    async def open(self) -> AsyncIterator[OpenAIChatModel]:
        """The model for one run; its HTTP client is closed when the run is over, whichever route made it."""
        model = gateway_model(self.access) if self.access is not None else chat_model(
            self.endpoint, self.api_key, self.model_name)
        try:
            async with model:
                yield model
        finally:
            if self.access is not None:  # the gateway's client was handed in, so the provider does not close it
                await model.client.close()


@dataclass(frozen=True)
class RunLimits:
    """What one run may spend; ``tokens`` None means no token limit."""

    seconds: float  # wall clock for the whole run
    steps: int  # model requests
    tokens: int | None = None  # total tokens in+out

    def __post_init__(self) -> None:
        if not self.seconds > 0:
            raise ValueError(f"a model run needs a wall clock above 0 seconds (got {self.seconds})")
        if self.steps < 1:
            raise ValueError(f"a model run needs at least 1 step (got {self.steps})")
        if self.tokens is not None and self.tokens < 1:
            raise ValueError(f"a model run's token limit must be at least 1, or None for none (got {self.tokens})")

    @classmethod
    def of(cls, budget: Budget) -> RunLimits:
        return cls(seconds=budget.seconds, steps=budget.steps, tokens=budget.tokens)


async def run_agent(agent: Agent[DepsT, OutputT], prompt: str, *, deps: DepsT, route: ModelRoute,
                    limits: RunLimits) -> RunOutcome[OutputT]:
    """Run ``agent`` (built without a model) on ``prompt`` over ``route``, within ``limits``.

    Each model request gets one transport retry and at most MAX_REQUEST_SECONDS. A timeout that is neither the
    run's wall clock nor a model request's, and any exception that is not pydantic-ai's, is a bug and raises.
    """
    usage = RunUsage()
    settings = ModelSettings(max_retries=1, timeout=min(limits.seconds, MAX_REQUEST_SECONDS))
    deadline = asyncio.timeout(limits.seconds)
    with capture_run_messages() as messages:
        try:
            async with route.open() as model:
                async with deadline:
                    result = await agent.run(prompt, model=model, deps=deps, model_settings=settings, usage=usage,
                                             usage_limits=UsageLimits(request_limit=limits.steps,
                                                                      total_tokens_limit=limits.tokens))
        except (TimeoutError, AgentRunError, OutputRejected) as exc:
            used = _used(usage)
            if deadline.expired():
                return Ended("timeout", f"wall clock ({format_seconds(limits.seconds)} s)", used, tuple(messages))
            if not isinstance(exc, (AgentRunError, OutputRejected)):
                raise  # a timeout that isn't ours or pydantic-ai's is a bug
            reason, detail = _why(exc, route, limits)
            return Ended(reason, _line(detail, route.redactor()), used, tuple(messages))
    return Finished(result.output, _used(usage), tuple(result.all_messages()))


def _used(usage: RunUsage) -> Usage:
    return Usage(steps=usage.requests, tokens=usage.total_tokens, input_tokens=usage.input_tokens,
                 output_tokens=usage.output_tokens)


def _why(exc: AgentRunError | OutputRejected, route: ModelRoute, limits: RunLimits) -> tuple[EndReason, str]:
    if isinstance(exc, OutputRejected):
        return "invalid_output", str(exc)
    tripped = route.tripped()
    if tripped:  # the gateway refused a request for budget: whatever pydantic-ai made of that, it's the budget
        return "usage_limit", tripped
    if isinstance(exc, UsageLimitExceeded):
        tokens = "tokens_limit" in str(exc)
        return "usage_limit", f"tokens ({limits.tokens})" if tokens else f"steps ({limits.steps})"
    if isinstance(exc, ModelAPIError):
        return "model_error", _describe_model_error(exc, route)
    if isinstance(exc, UnexpectedModelBehavior) and exc.message.startswith(_OUTPUT_RETRIES_EXHAUSTED):
        return "invalid_output", _last_problem(exc)
    if isinstance(exc, UnexpectedModelBehavior):
        return "bad_output", _first_sentence(exc.message)
    return "run_error", _first_sentence(str(exc))


def _line(text: str, redactor: Redactor) -> str:
    """Secrets out first, then one line cut short: cutting first could leave a key's prefix nothing recognises."""
    return one_line(redactor.text(" ".join(text.split())))


def _first_sentence(text: str) -> str:
    """pydantic-ai appends documentation hints ("Consider raising the limit, ...") the PR reader can't use."""
    return text.split(". ", 1)[0]


def _describe_model_error(exc: ModelAPIError, route: ModelRoute) -> str:
    """The failed request, naming the endpoint (MULL_LLM_BASE_URL), never a key.

    Through the gateway, the endpoint being down arrives as the gateway's 502/504 ``upstream_error``; it is
    worded as the endpoint's failure, which is what the operator must fix. The gateway itself unreachable is
    Mull's own bug.
    """
    upstream = _gateway_error_type(exc) == "upstream_error" and route.via_gateway
    if isinstance(exc, ModelTimeoutError) or (upstream and isinstance(exc, ModelHTTPError) and
                                              exc.status_code == 504):
        return f"model endpoint did not answer in time: {route.endpoint}"
    if isinstance(exc, ModelConnectionError) and route.via_gateway:
        return f"model gateway unreachable ({root_cause(exc)}): this is a bug in Mull, please report it"
    if isinstance(exc, ModelConnectionError):
        return f"model endpoint unreachable: {route.endpoint} ({root_cause(exc)})"
    if upstream and isinstance(exc, ModelHTTPError):
        return f"model endpoint unreachable: {route.endpoint} ({body_message(exc)})"
    if isinstance(exc, ModelHTTPError):
        return f"model endpoint returned HTTP {exc.status_code}: {body_message(exc)}"
    return f"model request failed: {exc.message}"


def _gateway_error_type(exc: ModelAPIError) -> str | None:
    """The gateway's error ``type``; the OpenAI SDK hands over the body's ``error`` object, or the whole body."""
    body = exc.body if isinstance(exc, ModelHTTPError) else None
    error = body.get("error", body) if isinstance(body, dict) else None
    return str(error.get("type")) if isinstance(error, dict) else None


def _last_problem(exc: UnexpectedModelBehavior) -> str:
    """What the model was last told was wrong with its output, from the exception chain pydantic-ai leaves."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ValidationError):
            return _problems(cause.errors(include_url=False))
        if isinstance(cause, ModelRetry):
            return _first_sentence(cause.message)
        if isinstance(cause, ToolRetryError):
            return feedback_text(cause.tool_retry.content)
        cause = cause.__cause__ or cause.__context__
    return _first_sentence(exc.message)


def feedback_text(content: Any) -> str:
    """What a retry told the model: validation error details, or a ModelRetry message."""
    if isinstance(content, list):
        return _problems(content)
    return _first_sentence(str(content))


def _problems(errors: Sequence[Mapping[str, Any]]) -> str:
    """Pydantic's error details as "field: what is wrong", a few of them, on one line."""
    shown = [f"{'.'.join(str(part) for part in item.get('loc', ())) or 'output'}: "
             f"{str(item.get('msg', '')).removeprefix('Value error, ')}" for item in errors[:_PROBLEMS_SHOWN]]
    more = len(errors) - _PROBLEMS_SHOWN
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")

