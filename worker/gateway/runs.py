"""Runs the gateway serves: who may call it (a per-run token), for which model, within which budget.

Each agent run gets a fresh unguessable token instead of the API key; the token is valid from ``open`` until
``close``, so whatever the agent copied of it is worthless once the run ends. Budgets live here because the
gateway is the one place every agent's model traffic passes: steps (model requests) and tokens hold for a
CLI agent exactly as for the builtin one, and the runner learns a budget tripped from an event instead of
trusting the agent to stop.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from worker.gateway.dialect import Tokens
from worker.gateway.scrub import Scrubber
from worker.gateway.transcript import Transcript
from worker.gateway.turns import Turns

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


@dataclass(frozen=True)
class RunUsage:
    """A run's usage at one moment: what ``close_run`` returns and what the PR reports."""

    requests: int
    input_tokens: int
    output_tokens: int
    estimated: bool  # some counts are ~4 characters a token: the upstream reported no usage for them
    tripped: str | None  # the budget that stopped the run, worded like the PR says it: "steps (40)"

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class UsageMeter:
    """Live counts for one run: the gateway adds to them, the runner reads them (``snapshot()``)."""

    def __init__(self, steps: int, tokens: int) -> None:
        self.steps = steps
        self.tokens = tokens
        self.requests = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.estimated = False
        self.tripped: str | None = None

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def tokens_left(self) -> int:
        return max(self.tokens - self.total_tokens, 0)

    def spent(self) -> str | None:
        """The budget already used up, if any: checked before each request is forwarded."""
        if self.requests >= self.steps:
            return f"steps ({self.steps})"
        if self.total_tokens >= self.tokens:
            return f"tokens ({self.tokens})"
        return None

    def add(self, used: Tokens) -> None:
        self.input_tokens += used.input
        self.output_tokens += used.output
        self.estimated = self.estimated or used.estimated

    def snapshot(self) -> RunUsage:
        return RunUsage(self.requests, self.input_tokens, self.output_tokens, self.estimated, self.tripped)


@dataclass(frozen=True)
class RunGrant:
    """What the runner hands an agent (``token``, ``model``) and watches (``meter``, ``out_of_budget``)."""

    run_id: str
    token: str = field(repr=False)  # the agent's API key for this run: "Authorization: Bearer <token>"
    model: str
    meter: UsageMeter = field(repr=False)
    out_of_budget: asyncio.Event = field(repr=False)  # set when a request is refused for budget
    transcript: Path

    @property
    def usage(self) -> RunUsage:
        return self.meter.snapshot()


@dataclass(frozen=True)
class Run:
    """The gateway's side of a run: its grant, its transcript, a scrubber that knows its token, and the turns
    that keep its model requests one at a time."""

    grant: RunGrant
    transcript: Transcript
    scrubber: Scrubber
    turns: Turns = field(default_factory=Turns)

    def trip(self, budget: str) -> None:
        if self.grant.meter.tripped is None:
            self.grant.meter.tripped = budget
        self.grant.out_of_budget.set()


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Runs:
    """Open runs by id and by token digest (a lookup that reveals nothing of a token through timing)."""

    def __init__(self, transcripts_dir: Path, scrubber: Scrubber) -> None:
        self._dir = transcripts_dir
        self._scrubber = scrubber
        self._by_id: dict[str, Run] = {}
        self._by_digest: dict[bytes, Run] = {}

    def open(self, run_id: str, model: str, steps: int, tokens: int) -> RunGrant:
        if not _RUN_ID.fullmatch(run_id):
            raise ValueError(f"run id {run_id!r} is not usable as a file name: use letters, digits and . _ : - "
                             "(at most 128, not starting with a dot)")
        if run_id in self._by_id:
            raise ValueError(f"run {run_id!r} is already open: close it (close_run) before opening it again")
        if not model:
            raise ValueError(f"run {run_id!r} needs a model name: set the stage's model in the config")
        if steps < 1 or tokens < 1:
            raise ValueError(f"run {run_id!r} needs budgets of at least 1 (got steps={steps}, tokens={tokens})")
        token = secrets.token_urlsafe(32)
        scrubber = self._scrubber.with_secret(token)
        path = self._dir / f"{run_id}.jsonl"
        grant = RunGrant(run_id, token, model, UsageMeter(steps, tokens), asyncio.Event(), path)
        run = Run(grant, Transcript(path, scrubber), scrubber)
        self._by_id[run_id] = run
        self._by_digest[_digest(token)] = run
        return grant

    def close(self, run_id: str) -> RunUsage:
        run = self._by_id.pop(run_id, None)
        if run is None:
            raise KeyError(f"no open run {run_id!r}: it was never opened or is already closed")
        del self._by_digest[_digest(run.grant.token)]
        run.transcript.close()
        return run.grant.usage

    def find(self, token: str) -> Run | None:
        run = self._by_digest.get(_digest(token))
        if run is None or not hmac.compare_digest(run.grant.token.encode(), token.encode()):
            return None
        return run

    def close_all(self) -> None:
        for run_id in list(self._by_id):
            self.close(run_id)
