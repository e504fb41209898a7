"""The schema of ``.github/mull.yml``: what a repository (or its org's ``.github`` repo) may set.

Every field says what it accepts (``allowed``, used in error messages and the README table) and why it
exists (``description``). Models are strict: YAML already types values, so ``steps: "5"`` or
``max_in_flight: yes`` is a mistake to report, not something to coerce.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from difflib import get_close_matches
from functools import cache
from typing import Any, Literal
from urllib.parse import urlsplit

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticUndefined

from bot import egress_hosts
from bot.settings import MullSettings
from worker.agent.presets import PRESETS
from worker.views.sinks import SECRET_PREFIX

STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)
CRON_MACROS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
_LOGIN = re.compile(r"^[A-Za-z0-9](?:-?[A-Za-z0-9]){0,38}$")
_TEAM = re.compile(r"^@?([A-Za-z0-9](?:-?[A-Za-z0-9]){0,38})/([A-Za-z0-9][A-Za-z0-9_.-]{0,99})$")
MAX_SETUP_STEPS = 20
MAX_COMMAND_CHARS = 2000
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")


def _field(default: Any, allowed: str, description: str, default_doc: str | None = None, **kwargs: Any) -> Any:
    """A pydantic Field that also says what it accepts and, when not a literal, where its default comes from."""
    extra: dict[str, Any] = {"allowed": allowed}
    if default_doc:
        extra["default_doc"] = default_doc
    return Field(default, description=description, json_schema_extra=extra, **kwargs)


class Models(BaseModel):
    """Model names per stage, so a repo can plan with a strong model and implement with a cheap one."""

    model_config = STRICT

    plan: str | None = _field(
        None, "a model name", "Model that writes the plan; empty means `MULL_LLM_MODEL`.", min_length=1)
    implement: str | None = _field(
        None, "a model name", "Model the builtin agent implements with; empty means `MULL_LLM_MODEL`.", min_length=1)
    critique: str | None = _field(
        None, "a model name", "Model that critiques the pull request; empty means `MULL_LLM_MODEL`.", min_length=1)


class Budgets(BaseModel):
    """Per-run limits; the defaults are the deployment's MULL_AGENT_* settings (see Defaults)."""

    model_config = STRICT

    seconds: int = _field(
        ..., "an integer ≥ 10", "Wall-clock budget of one agent run, seconds.", "`MULL_AGENT_TIMEOUT`", ge=10)
    steps: int = _field(
        ..., "an integer ≥ 1", "Model requests one agent run may make.", "`MULL_AGENT_MAX_STEPS`", ge=1)
    tokens: int = _field(
        ..., "an integer ≥ 1000", "Model tokens (input + output) one agent run may use.", "`MULL_AGENT_MAX_TOKENS`",
        ge=1000)


class Digest(BaseModel):
    """When the review-queue digest goes out, read in the repo's ``timezone``."""

    model_config = STRICT

    schedule: str = _field(
        "0 9 * * 1-5", "a 5-field cron expression (minute hour day month weekday) or @daily, @weekly, …",
        "When the digest is posted, in `timezone`.")
    business_days_only: bool = _field(
        True, "true or false", "Skip the digest on Saturdays and Sundays even when `schedule` matches.")

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        text = " ".join(value.split())
        if text.lower() in CRON_MACROS:
            return text.lower()
        if len(text.split(" ")) != 5 or not croniter.is_valid(text):
            raise ValueError(f"'{value}' is not a cron expression; use 5 fields: minute hour day month weekday, "
                             "for example '0 9 * * 1-5' (09:00 on weekdays), or @daily / @weekly")
        return text


class Sinks(BaseModel):
    """Where digests and events are also sent. Secrets stay in the deployment's environment."""

    model_config = STRICT

    slack_webhook: str | None = _field(
        None, "an https:// URL", "Slack incoming-webhook URL the digest is posted to.")
    json_webhook: str | None = _field(
        None, "an https:// URL", "URL that receives events and digests as signed JSON.")
    json_secret_env: str | None = _field(
        None, f"the name of an environment variable {SECRET_PREFIX}* (A-Z, 0-9, _)",
        "Environment variable of the Mull deployment holding the HMAC secret for `json_webhook`; the secret "
        f"itself never goes in this file, and only the operator's {SECRET_PREFIX}* variables can be named.")

    @field_validator("slack_webhook", "json_webhook")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        """Sinks carry repository data, and whoever edits the file picks the host: https only.

        Whether the host is public is checked in ``build`` (literal addresses, against the operator's
        ``MULL_SINK_ALLOW_HOSTS``) and again at every send (``worker/views/sink_address.py``).
        """
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("must be an https:// URL")
        return value

    @field_validator("json_secret_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _ENV_NAME.match(value):
            raise ValueError("must be the NAME of an environment variable of the Mull deployment (A-Z, 0-9, _), "
                             "not the secret itself")
        if not value.startswith(SECRET_PREFIX) or value == SECRET_PREFIX:
            raise ValueError(f"must name a {SECRET_PREFIX}* variable (e.g. {SECRET_PREFIX}ACME): the operator "
                             "sets the secret under that prefix, so a repository cannot sign with another of the "
                             "deployment's variables")
        return value


class Network(BaseModel):
    """What sandboxed commands may reach through Mull's egress proxy: never more than the operator allows."""

    model_config = STRICT

    allow: list[str] | None = _field(
        None, "a list of host names, *.domain wildcards or host:port entries",
        "Hosts sandboxed commands may reach (ports 443 and 80 unless `host:port`); each must lie within the "
        "operator's `MULL_SANDBOX_ALLOW_HOSTS`, which a repository can narrow but never widen; `[]`: no network.",
        "`MULL_SANDBOX_ALLOW_HOSTS`")
    agent: bool = _field(
        False, "true or false",
        "Whether the agent's own commands get this network too; off, only `setup` commands do (they fetch "
        "dependencies before the agent starts).")

    @field_validator("allow")
    @classmethod
    def _hosts(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        try:
            rules = egress_hosts.parse_list(value)
        except egress_hosts.BadHostEntry as exc:
            raise ValueError(str(exc)) from None
        out: list[str] = []
        for rule in rules:
            shown = str(rule)
            if shown not in out:
                out.append(shown)
        return out


class RepoConfig(BaseModel):
    """One repository's settings: the deployment's defaults, then the org's file, then the repo's file."""

    model_config = STRICT

    label: str = _field(
        ..., "a label name (1-50 characters)", "Issue label that starts a run in this repository.", "`MULL_LABEL`",
        min_length=1, max_length=50)
    models: Models = _field(
        PydanticUndefined, "a mapping with the keys plan, implement, critique", "Model names per stage.",
        default_factory=Models)
    agent_command: str | None = _field(
        None, "one of " + ", ".join(PRESETS),
        "CLI agent preset for this repository, among those the operator enabled in `MULL_AGENT_PRESETS`; empty "
        "means the deployment's agent. A repository never sets a command template, and no setting of a "
        "repository widens the sandbox.")
    budgets: Budgets = _field(..., "a mapping with the keys seconds, steps, tokens", "Limits of one agent run.")
    plan: Literal["off", "comment", "approve"] = _field(
        "off", "off, comment or approve",
        "`off`: implement at once; `comment`: post the plan, then implement; `approve`: post the plan and wait "
        "for a maintainer's approval.")
    max_awaiting_review: int = _field(
        3, "an integer ≥ 1", "Mull pull requests out of draft awaiting review at once (here, and per reviewer); "
        "finished ones beyond it stay drafts in line.", ge=1)
    max_in_flight: int = _field(
        2, "an integer ≥ 1", "Agent runs of this repository at the same time; labeled issues beyond it wait in "
        "line.", ge=1)
    reviewers: list[str] = _field(
        PydanticUndefined, "a list of GitHub logins or @org/team names",
        "Who may be asked to review Mull's pull requests (the least busy, at release); empty means CODEOWNERS, "
        "then whoever applied the label.",
        default_factory=list)
    timezone: str = _field(
        "UTC", "an IANA time zone name such as Europe/Berlin", "Time zone of `digest.schedule` and business days.")
    digest: Digest = _field(
        PydanticUndefined, "a mapping with the keys schedule, business_days_only", "The review-queue digest.",
        default_factory=Digest)
    sinks: Sinks = _field(
        PydanticUndefined, "a mapping with the keys slack_webhook, json_webhook, json_secret_env",
        "Where digests and events are also sent.", default_factory=Sinks)
    network: Network = _field(
        PydanticUndefined, "a mapping with the keys allow, agent", "Network access of sandboxed commands.",
        default_factory=Network)
    update: Literal["merge", "rebase"] = _field(
        "merge", "merge or rebase",
        "How Mull brings a finished pull request up to date with its base branch before marking it ready for "
        "review: `merge` adds a merge commit, `rebase` replays its commits on the base (and force-pushes). A "
        "conflict gets one agent revision; the pull request stays a draft until that succeeds.")
    max_fix_rounds: int = _field(
        1, "an integer from 0 to 5", "Rounds in which the agent fixes what the critique found.", ge=0, le=5)
    ci_fix_attempts: int = _field(
        2, "an integer from 0 to 5", "Attempts to fix a failing CI run on a Mull pull request.", ge=0, le=5)
    setup: list[str] = _field(
        PydanticUndefined, f"a list of at most {MAX_SETUP_STEPS} shell commands",
        "Commands run in the sandbox, in the run's tree, before the agent starts (install dependencies, build): "
        "each in a fresh shell, in order; one that fails stops the run. What they create is never committed.",
        default_factory=list, max_length=MAX_SETUP_STEPS)
    setup_timeout: int = _field(
        ..., "an integer from 10 to 3600", "Wall-clock budget of the `setup` commands together, seconds.",
        "`MULL_SETUP_TIMEOUT`", ge=10, le=3600)
    test: str | None = _field(
        None, "one shell command", "The command that runs the repository's tests: the agent is told to run it, "
        "and Mull runs it on the agent's work and reports the result in the pull request.",
        min_length=1, max_length=MAX_COMMAND_CHARS)
    test_timeout: int = _field(
        ..., "an integer from 10 to 3600", "Wall-clock budget of Mull's run of `test`, seconds.",
        "`MULL_TEST_TIMEOUT`", ge=10, le=3600)
    revision_quiet_minutes: float = _field(
        5, "a number of minutes from 0 to 1440",
        "Minutes without new review comments before Mull starts a revision, so one review makes one revision.",
        ge=0, le=1440)

    @field_validator("agent_command")
    @classmethod
    def _preset(cls, value: str | None) -> str | None:
        if value is None or value.strip() in PRESETS:
            return None if value is None else value.strip()
        raise ValueError(f"must be one of {', '.join(PRESETS)}; a custom command template can only be set by "
                         "the operator in MULL_AGENT_COMMAND")

    @field_validator("setup")
    @classmethod
    def _setup(cls, value: list[str]) -> list[str]:
        for number, command in enumerate(value, start=1):
            if not command.strip():
                raise ValueError(f"command {number} is empty; remove it or write the command")
            if len(command) > MAX_COMMAND_CHARS:
                raise ValueError(f"command {number} is {len(command)} characters; the limit is {MAX_COMMAND_CHARS} "
                                 "(put a long script in a file of the repository and run that)")
        return value

    @field_validator("test")
    @classmethod
    def _test(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("is blank; remove `test` or write the command that runs the tests")
        return value

    @field_validator("plan", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        """YAML 1.1 reads a bare ``off`` as false; that is what the user meant."""
        return "off" if value is False else value

    @field_validator("reviewers")
    @classmethod
    def _reviewers(cls, value: list[str]) -> list[str]:
        out: list[str] = []
        for entry in value:
            team = _TEAM.match(entry)
            login = entry.removeprefix("@")
            if team:
                name = f"@{team.group(1)}/{team.group(2)}"
            elif _LOGIN.match(login):
                name = login
            else:
                raise ValueError(f"'{entry}' is neither a GitHub login (like octocat) nor a team (like @org/team)")
            if name.lower() not in {n.lower() for n in out}:
                out.append(name)
        return out

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            close = get_close_matches(value, _zones(), n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ValueError(f"unknown time zone '{value}'{hint}; use an IANA name such as Europe/Berlin, "
                             "America/New_York or UTC") from None
        return value

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


@cache
def _zones() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


@dataclass(frozen=True)
class Defaults:
    """What the deployment's settings contribute: the values a file does not set."""

    label: str = "mull"
    seconds: int = 1800
    steps: int = 40
    tokens: int = 400_000
    max_fix_rounds: int = 1
    ci_fix_attempts: int = 2
    revision_quiet_minutes: float = 5
    setup_timeout: int = 600
    test_timeout: int = 600
    agent_presets: tuple[str, ...] = ()  # what `agent_command` may name here (MULL_AGENT_PRESETS)
    sink_allowed: tuple[str, ...] = ()  # non-public hosts sinks may reach (MULL_SINK_ALLOW_HOSTS)
    sandbox_allowed: tuple[str, ...] = ()  # hosts sandboxed commands may reach at most (MULL_SANDBOX_ALLOW_HOSTS)

    @classmethod
    def from_settings(cls, settings: MullSettings) -> Defaults:
        return cls(label=settings.label, seconds=settings.agent_timeout, steps=settings.agent_max_steps,
                   tokens=settings.agent_max_tokens, max_fix_rounds=settings.max_fix_rounds,
                   ci_fix_attempts=settings.ci_fix_attempts, revision_quiet_minutes=settings.revision_quiet / 60,
                   setup_timeout=settings.setup_timeout, test_timeout=settings.test_timeout,
                   agent_presets=settings.enabled_presets, sink_allowed=settings.sink_allowed,
                   sandbox_allowed=settings.sandbox_allowed)

    def config(self) -> RepoConfig:
        return RepoConfig(label=self.label,
                          budgets=Budgets(seconds=self.seconds, steps=self.steps, tokens=self.tokens),
                          max_fix_rounds=self.max_fix_rounds, ci_fix_attempts=self.ci_fix_attempts,
                          revision_quiet_minutes=self.revision_quiet_minutes,
                          setup_timeout=self.setup_timeout, test_timeout=self.test_timeout)


def reference_table() -> str:
    """The README's table of every key, generated from the schema so the two cannot drift."""
    rows = ["| Key | Type | Default | Meaning |", "|---|---|---|---|"]
    defaults = Defaults().config()

    def walk(model: type[BaseModel], instance: BaseModel, prefix: str) -> None:
        for name, field in model.model_fields.items():
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            value = getattr(instance, name)
            if isinstance(value, BaseModel):
                walk(type(value), value, f"{prefix}{name}.")
                continue
            default = extra.get("default_doc") or ("—" if value is None else f"`{_yaml_scalar(value)}`")
            rows.append(f"| `{prefix}{name}` | {extra.get('allowed')} | {default} | {field.description} |")

    walk(RepoConfig, defaults, "")
    return "\n".join(rows)


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(value) + "]"
    return str(value)
