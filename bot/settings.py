"""Mull's configuration: one pydantic-settings class read from ``MULL_*`` variables and ``.env``.

Settings are a value passed to whoever needs them; nothing reads the environment behind their back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot import redis_target
from bot.app_key import AppKeyError, read_app_key
from bot.sandbox_paths import guarded, invoking_homes, refusal

ENV_PREFIX = "MULL_"


class ConfigError(Exception):
    """A configuration problem, worded so the message alone tells the user what to set."""


class MullSettings(BaseSettings):
    """Every ``MULL_*`` variable. Field docs are the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", env_file=None)

    app_id: int | None = Field(None, description="GitHub App id (from the App's settings page).")
    app_slug: str | None = Field(
        None, description="GitHub App slug; looked up with GET /app when unset. Its bot's events are ignored."
    )
    private_key: SecretStr | None = Field(None, description="GitHub App private key, PEM text.")
    private_key_path: Path | None = Field(None, description="Path to the App private key PEM file.")
    webhook_secret: SecretStr | None = Field(None, description="Webhook secret set on the GitHub App.")
    github_url: str = Field("https://api.github.com", description="GitHub REST base URL (GHES: https://HOST/api/v3).")
    github_org: str | None = Field(
        None, description="Organisation that owns the App /setup creates; unset: the signed-in user's account.")
    redis_url: str | None = Field(
        None, description="Redis URL (`redis://`, `rediss://`, `unix://`, or `redis+sentinel://` for a master "
        "found through Sentinel: see Redis with Sentinel); unset starts an embedded Redis under MULL_DATA_DIR.")
    data_dir: Path = Field(
        Path(".mull"), description="Repo mirrors, run directories, model transcripts and the embedded Redis live here.")
    host: str = Field("127.0.0.1", description="Address the web server binds.")
    port: int = Field(8000, ge=0, le=65535, description="Port the web server binds.")
    label: str = Field("mull", min_length=1, max_length=50, description="Issue label that triggers a run.")
    llm_base_url: str | None = Field(None, description="OpenAI-compatible endpoint of the builtin agent.")
    llm_api_key: SecretStr | None = Field(None, description="API key for MULL_LLM_BASE_URL (local servers: any).")
    llm_model: str | None = Field(None, description="Model name for the builtin agent.")
    agent_command: str | None = Field(
        None, description="Command template for a CLI agent, with {prompt_file}; set selects the command backend."
    )
    agent_presets: str = Field(
        "", description="CLI agent presets a repository's `.github/mull.yml` may pick with `agent_command` "
        "(comma-separated, e.g. `aider,mini-swe-agent`); empty: repositories use the deployment's agent.")
    sandbox: bool = Field(
        True, description="Run agent commands under bubblewrap (bwrap): no network, nothing of the host but the "
        "toolchain. Off only for trusted dev: unconfined commands see the whole machine and its network.")
    sandbox_ro_paths: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, description="Extra host directories the sandbox sees read-only (where CLI agents "
        "are installed): absolute paths, colon-separated or a JSON list.")
    agent_timeout: int = Field(1800, ge=10, description="Wall-clock budget of one agent run, seconds.")
    agent_max_steps: int = Field(40, ge=1, description="Model requests one agent run may make.")
    agent_max_tokens: int = Field(400_000, ge=1000, description="Model tokens (in + out) one agent run may use.")
    command_timeout: int = Field(120, ge=1, description="Timeout of one command the agent runs, seconds.")
    critique_model: str | None = Field(None, description="Model of the critique; defaults to MULL_LLM_MODEL.")
    critique_command: str | None = Field(
        None, description="A CLI critic instead of the builtin one: a template with {prompt_file}; prints JSON or "
        "Markdown.")
    critique_prompt_tokens: int = Field(24_000, ge=8_000, description="Token budget of the critique's prompt.")
    critique_timeout: int = Field(600, ge=10, description="Wall-clock budget of one critique, seconds.")
    critique_max_steps: int = Field(12, ge=1, description="Model requests one critique may make.")
    critique_max_tokens: int = Field(200_000, ge=1000, description="Model tokens one critique may use.")
    max_fix_rounds: int = Field(1, ge=0, le=5, description="Automatic revision rounds after a `fix` verdict.")
    ci_fix_attempts: int = Field(2, ge=0, le=5, description="Automatic fix attempts per PR when its checks fail.")
    revision_quiet: int = Field(
        300, ge=0, description="Seconds after the last review event before a review-driven revision starts.")
    worker_jobs: int = Field(4, ge=1, description="Jobs one worker process runs at once.")
    installation_runs: int = Field(
        2, ge=1, description="Agent runs one installation (organisation or account) may have going at once, "
        "across all workers, so one cannot starve the others.")
    shutdown_wait: int = Field(
        0, ge=0, description="Seconds a stopping worker lets running jobs finish before cancelling them "
        "(cancelled jobs rerun on another worker).")
    sink_allow_hosts: str = Field(
        "", description="Hosts, IP addresses or networks (CIDR) a repository's sinks may reach although they are "
        "loopback, private, link-local or CGNAT (comma-separated, e.g. `hooks.intranet,10.1.0.0/16`); empty: "
        "sinks reach public addresses only.")
    redeliver_interval: int = Field(
        300, ge=10, le=3600, description="Seconds between looks at GitHub's delivery log for deliveries Mull did "
        "not take (answered with an error, or not at all), which it asks GitHub to redeliver; a period that "
        "divides an hour (10, 15, 20, 30 s or whole minutes such as 60, 120, 300).")
    log_level: str = Field("INFO", description="Log level (DEBUG, INFO, WARNING, ERROR).")

    @field_validator("github_url", "llm_base_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        """Refused at startup with what is wrong, never the URL itself (it may carry passwords)."""
        if value:
            redis_target.parse(value)
        return value or None

    @field_validator("redeliver_interval")
    @classmethod
    def _divides_an_hour(cls, value: int) -> int:
        if not (60 % value == 0 if value < 60 else value % 60 == 0 and 60 % (value // 60) == 0):
            raise ValueError(f"{value} s does not divide an hour into equal turns: use 10, 15, 20 or 30 seconds, "
                             "or whole minutes that divide an hour (60, 120, 180, 240, 300, 600, 900, 1800, 3600)")
        return value

    @field_validator("agent_presets")
    @classmethod
    def _presets(cls, value: str) -> str:
        """Names only; the worker checks them against its presets at startup (bot/ knows no agents)."""
        names = [name.strip() for name in value.split(",") if name.strip()]
        for name in names:
            if not name.replace("-", "").replace("_", "").isalnum():
                raise ValueError(f"'{name}' is not a preset name; list preset names separated by commas")
        return ",".join(names)

    @field_validator("sink_allow_hosts")
    @classmethod
    def _hosts(cls, value: str) -> str:
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        for entry in entries:
            if not all(ch.isalnum() or ch in ".-:/[]_" for ch in entry):
                raise ValueError(f"'{entry}' is not a host name, IP address or network; separate entries by commas")
        return ",".join(entries)

    @field_validator("sandbox_ro_paths", mode="before")
    @classmethod
    def _path_list(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part for part in text.split(":") if part]

    @field_validator("sandbox_ro_paths")
    @classmethod
    def _shown_to_the_sandbox(cls, paths: list[Path], info: ValidationInfo) -> list[Path]:
        """Refused at startup: a listed path must not expose Mull's secrets, its data or the user's HOME."""
        if "data_dir" not in info.data:
            return paths  # MULL_DATA_DIR is invalid itself, and reported
        rules = guarded(info.data["data_dir"], info.data.get("private_key_path"), Path.cwd(), invoking_homes())
        for path in paths:
            problem = refusal(path, rules)
            if problem:
                raise ValueError(problem)
        return paths

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return level

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):  # type: ignore[no-untyped-def]
        """Only what load_settings passes in, then .env: the environment is read in one place."""
        return (init_settings, dotenv_settings)

    # -- derived values ---------------------------------------------------------------------------------

    @property
    def enabled_presets(self) -> tuple[str, ...]:
        """The presets repositories may choose; a repository never chooses a custom command."""
        return tuple(name for name in self.agent_presets.split(",") if name)

    @property
    def sink_allowed(self) -> tuple[str, ...]:
        """Where sinks may post although the address is not public (the operator's exceptions)."""
        return tuple(entry.strip("[]") for entry in self.sink_allow_hosts.split(",") if entry)

    @property
    def redis_embedded(self) -> bool:
        return not self.redis_url

    def app_private_key(self) -> str:
        """The App's PEM, from MULL_PRIVATE_KEY or MULL_PRIVATE_KEY_PATH, parsed: a ConfigError says what is wrong
        with it (missing, unreadable, not PEM, public, encrypted) without a byte of the key."""
        try:
            return read_app_key(self.private_key.get_secret_value() if self.private_key is not None else None,
                                self.private_key_path)
        except AppKeyError as exc:
            raise ConfigError(str(exc)) from None

    def require_app(self) -> int:
        """The App id, or a ConfigError naming what to set."""
        if self.app_id is None:
            raise ConfigError(
                "MULL_APP_ID is not set: create the GitHub App (README, 'Create the GitHub App') "
                "and set MULL_APP_ID to the id shown on its settings page"
            )
        self.app_private_key()
        return self.app_id

    def require_webhook_secret(self) -> str:
        if self.webhook_secret is None or not self.webhook_secret.get_secret_value():
            raise ConfigError(
                "MULL_WEBHOOK_SECRET is not set: set it to the webhook secret configured on the GitHub App"
            )
        return self.webhook_secret.get_secret_value()

    def require_model(self) -> None:
        """Every agent, builtin or CLI, reaches its model through Mull's gateway, which forwards here."""
        missing = [name for name, value in (("MULL_LLM_BASE_URL", self.llm_base_url),
                                            ("MULL_LLM_MODEL", self.llm_model)) if not value]
        if missing:
            raise ConfigError(
                f"{' and '.join(missing)} not set: every agent (the builtin one and CLI agents alike) talks to an "
                "OpenAI-compatible endpoint through Mull's model gateway; set its base URL (ending in /v1) and a "
                "model name"
            )

    def secret_values(self) -> list[str]:
        """Every configured secret value, so logs can redact them wherever they appear."""
        values = [s.get_secret_value() for s in (self.private_key, self.webhook_secret, self.llm_api_key) if s]
        if self.redis_url:
            values += redis_target.parse(self.redis_url).secrets()
        return [v for v in values if len(v) >= 6]


def load_settings(environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env") -> MullSettings:
    """Build settings from ``environ`` (default: the process environment) and ``env_file``.

    Raises ConfigError with every invalid variable named, instead of pydantic's raw report.
    """
    source = os.environ if environ is None else environ
    values = {k[len(ENV_PREFIX):].lower(): v for k, v in source.items() if k.startswith(ENV_PREFIX)}
    env_path = Path(env_file) if env_file else None
    try:
        if env_path is not None and env_path.is_file():
            return MullSettings(_env_file=env_path, **values)  # type: ignore[call-arg,arg-type]
        return MullSettings(**values)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ENV_PREFIX + "_".join(str(p) for p in err["loc"]).upper()
            problems.append(f"{name}: {err['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
