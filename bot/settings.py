"""Mull's configuration: one pydantic-settings class read from ``MULL_*`` variables and ``.env``.

Settings are a value passed to whoever needs them; nothing reads the environment behind their back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot import budgets, egress_hosts, prices, redis_target
from bot.app_key import AppKeyError, read_app_key
from bot.sandbox_paths import guarded, invoking_homes, refusal
from bot.session_bucket import Bucket, check_url

ENV_PREFIX = "MULL_"
_URL_EXAMPLES = {"github_url": "https://api.github.com (GitHub Enterprise Server: https://HOST/api/v3)",
                 "llm_base_url": "http://localhost:11434/v1 or https://api.openai.com/v1",
                 "public_url": "https://mull.example.org"}


class ConfigError(Exception):
    """Configuration problems, worded so the message alone tells the user what to set: every problem found at
    once, one per line, each naming its variable, what is wrong and the fix (never the value, which may be a
    secret)."""

    def __init__(self, *problems: str) -> None:
        self.problems = tuple(problems)
        super().__init__(self.problems[0] if len(self.problems) == 1 else
                         f"{len(self.problems)} problems to fix before Mull can start:\n"
                         + "\n".join(f"  - {problem}" for problem in self.problems))


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
    public_url: str | None = Field(
        None, description="The address people open Mull's pages at (`https://mull.example.org`): pull requests "
        "and comments link to each run's session page there; unset: no links. /setup writes it.")
    github_client_id: str | None = Field(
        None, description="The GitHub App's client id: signing in to session pages with GitHub. /setup writes it.")
    github_client_secret: SecretStr | None = Field(
        None, description="The GitHub App's client secret (with MULL_GITHUB_CLIENT_ID). /setup writes it.")
    session_retention_days: int = Field(
        30, ge=1, le=365, description="Days a run's session page is kept after the run (Redis or the bucket).")
    session_bucket: str | None = Field(
        None, description="An S3-compatible bucket for session pages instead of Redis, path-style: "
        "`https://HOST/BUCKET[/PREFIX]` (AWS: `https://s3.REGION.amazonaws.com/BUCKET`; MinIO, R2, Ceph alike).")
    session_bucket_region: str = Field("us-east-1", description="The bucket's region, for request signing.")
    session_bucket_key_id: str | None = Field(None, description="Access key id for MULL_SESSION_BUCKET.")
    session_bucket_secret: SecretStr | None = Field(
        None, description="Secret access key for MULL_SESSION_BUCKET (it signs requests; it is never sent).")
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
    sandbox_allow_hosts: str = Field(
        egress_hosts.DEFAULT_ALLOW, description="Hosts sandboxed commands may reach through Mull's egress proxy "
        "(comma-separated: `pypi.org`, `*.example.org` for its subdomains, `host:port` for a port other than 443 "
        "and 80); repositories may narrow it with `network.allow`. The default is the common package registries "
        "and GitHub's archive and release hosts (see Sandbox network); empty: no network at all. A host that "
        "resolves to a loopback, private or link-local address is reached only when listed here exactly.")
    agent_timeout: int = Field(1800, ge=10, description="Wall-clock budget of one agent run, seconds.")
    agent_max_steps: int = Field(40, ge=1, description="Model requests one agent run may make.")
    agent_max_tokens: int = Field(400_000, ge=1000, description="Model tokens (in + out) one agent run may use.")
    command_timeout: int = Field(120, ge=1, description="Timeout of one command the agent runs, seconds.")
    setup_timeout: int = Field(
        600, ge=10, le=3600, description="Wall-clock budget of a repository's `setup:` commands together, seconds "
        "(its `.github/mull.yml` may set `setup_timeout`).")
    env_cache_mb: int = Field(
        2048, ge=0, description="Disk, in MB, for warm environments on this machine: what repositories' `setup:` "
        "prepared (a `.venv`, `node_modules`), kept so a later run with the same setup and lock files restores it "
        "instead of running setup; least recently used go first. 0: off.")
    test_timeout: int = Field(
        600, ge=10, le=3600, description="Wall-clock budget of Mull's own run of a repository's `test:` command, "
        "seconds (its `.github/mull.yml` may set `test_timeout`).")
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
    worker_heartbeat: float = Field(
        20.0, ge=0.5, le=300, description="Seconds a worker's heartbeat in Redis lasts (it beats several times "
        "within). A worker silent this long is suspect, and its running jobs are released to other workers after "
        "as long again without a beat: about twice this after a worker dies.")
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
    model_prices: str = Field(
        "", description="What model tokens cost, US dollars per million input/output tokens: `model=in/out` "
        "pairs separated by commas (`gpt-4o=2.5/10, claude-sonnet-4=3/15`) or a JSON object "
        "(`{\"gpt-4o\": [2.5, 10]}`). Costs are shown in pull requests, status comments, `mull status` and "
        "/metrics; a model not listed shows its tokens with an unknown price.")
    installation_budget: str = Field(
        "", description="Monthly budget of every installation: tokens (`5000000 tokens`) or US dollars (`$50`, "
        "counted with MULL_MODEL_PRICES); empty: none. Once spent, new runs wait until the next month or a raise.")
    installation_budgets: str = Field(
        "", description="Per-installation overrides of MULL_INSTALLATION_BUDGET, by installation id or account "
        "login: `acme=$200, 12345=5000000 tokens, big-corp=none`.")
    log_level: str = Field("INFO", description="Log level (DEBUG, INFO, WARNING, ERROR).")
    log_format: str = Field(
        "auto", description="How log lines look: auto (readable on a terminal, JSON lines otherwise), console or "
        "json.")

    @field_validator("github_url", "llm_base_url", "public_url")
    @classmethod
    def _web_address(cls, value: str | None, info: ValidationInfo) -> str | None:
        """An http(s) URL with a host, refused at start-up otherwise (a bare host or ``localhost:11434`` would
        be read as a path or a scheme and fail at the first request). Never echoed: it may carry a password."""
        if not value:
            return value
        example = _URL_EXAMPLES[str(info.field_name)]
        if "://" not in value:
            raise ValueError(f"has no scheme: write the whole URL, e.g. {example}")
        parts = urlsplit(value)
        if parts.scheme.lower() not in ("http", "https"):
            raise ValueError(f"has the scheme '{parts.scheme[:20]}': only http:// and https:// work here, e.g. "
                             f"{example}")
        try:
            host = parts.hostname
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            host = None
        if not host or not value.isprintable() or " " in value:
            raise ValueError(f"is not a valid URL (no host, a bad port, or spaces): write it like {example}")
        return value.rstrip("/")

    @field_validator("session_bucket")
    @classmethod
    def _bucket_url(cls, value: str | None) -> str | None:
        return check_url(value) if value else None

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

    @field_validator("sandbox_allow_hosts")
    @classmethod
    def _allow_hosts(cls, value: str) -> str:
        entries = egress_hosts.split(value)
        try:
            egress_hosts.parse_list(entries)
        except egress_hosts.BadHostEntry as exc:
            raise ValueError(f"{exc}; separate entries by commas, or leave it empty for no network") from None
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

    @field_validator("model_prices", "installation_budget", "installation_budgets")
    @classmethod
    def _spending(cls, value: str, info: ValidationInfo) -> str:
        """Prices and budgets are parsed where they are used; here only so that a bad one stops the start."""
        parse, bad = {"model_prices": (prices.parse, prices.BadPrices),
                      "installation_budget": (budgets.parse_budget, budgets.BadBudget),
                      "installation_budgets": (budgets.parse_overrides, budgets.BadBudget)}[str(info.field_name)]
        try:
            parse(value)
        except bad as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return level

    @field_validator("log_format")
    @classmethod
    def _format(cls, value: str) -> str:
        chosen = value.strip().lower()
        if chosen not in {"auto", "console", "json"}:
            raise ValueError("must be auto (readable lines on a terminal, JSON lines otherwise), console (readable "
                             "lines) or json (one JSON object a line)")
        return chosen

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
    def sandbox_allowed(self) -> tuple[str, ...]:
        """The hosts sandboxed commands may reach at most (a repository may narrow them)."""
        return tuple(egress_hosts.split(self.sandbox_allow_hosts))

    @property
    def prices(self) -> dict[str, prices.Price]:
        """Price per model; a model not listed has no known price."""
        return prices.parse(self.model_prices)

    def budget_for(self, installation_id: int, account: str | None) -> budgets.Budget:
        """The installation's monthly budget: its override (by id, then account), else the default."""
        return budgets.budget_of(budgets.parse_budget(self.installation_budget),
                                 budgets.parse_overrides(self.installation_budgets), installation_id, account)

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

    def unmet(self, *, app: bool = False, webhook: bool = False, model: bool = False) -> list[str]:
        """Every setting a command needs and lacks (or whose key will not parse), all at once: one restart fixes
        them all, rather than one per restart."""
        problems = []
        if app:
            if self.app_id is None:
                problems.append("MULL_APP_ID is not set: create the GitHub App (README, 'Create the GitHub App'), "
                                "or open /setup on `mull serve`, and set MULL_APP_ID to the id on its settings page")
            try:
                self.app_private_key()
            except ConfigError as exc:
                problems += exc.problems
        if webhook and (self.webhook_secret is None or not self.webhook_secret.get_secret_value()):
            problems.append("MULL_WEBHOOK_SECRET is not set: set it to the webhook secret configured on the GitHub "
                            "App (its settings page, 'Webhook secret')")
        problems += self._bucket_problems()
        if model:
            why = ("every agent (the builtin one and CLI agents alike) talks to an OpenAI-compatible endpoint "
                   "through Mull's model gateway")
            if not self.llm_base_url:
                problems.append(f"MULL_LLM_BASE_URL is not set: {why}; set its base URL, ending in /v1, e.g. "
                                "http://localhost:11434/v1 for Ollama")
            if not self.llm_model:
                problems.append(f"MULL_LLM_MODEL is not set: {why}; set the model name it serves, e.g. "
                                "qwen2.5-coder")
        return problems

    def _bucket_problems(self) -> list[str]:
        if not self.session_bucket:
            return []
        missing = [name for name, value in (("MULL_SESSION_BUCKET_KEY_ID", self.session_bucket_key_id),
                                            ("MULL_SESSION_BUCKET_SECRET", self.session_bucket_secret)) if not value]
        return [f"{name} is not set: MULL_SESSION_BUCKET needs an access key to sign its requests; set both "
                "MULL_SESSION_BUCKET_KEY_ID and MULL_SESSION_BUCKET_SECRET, or unset MULL_SESSION_BUCKET to keep "
                "sessions in Redis" for name in missing]

    def bucket(self) -> Bucket | None:
        """The session bucket, or None (sessions live in Redis); ConfigError when it lacks its key."""
        problems = self._bucket_problems()
        if problems:
            raise ConfigError(*problems)
        if not self.session_bucket or not self.session_bucket_key_id or not self.session_bucket_secret:
            return None
        return Bucket(self.session_bucket, self.session_bucket_region, self.session_bucket_key_id,
                      self.session_bucket_secret.get_secret_value())

    def require_app(self) -> int:
        """The App id, or a ConfigError naming what to set."""
        problems = self.unmet(app=True)
        if problems or self.app_id is None:
            raise ConfigError(*problems)
        return self.app_id

    def require_webhook_secret(self) -> str:
        problems = self.unmet(webhook=True)
        if problems or self.webhook_secret is None:
            raise ConfigError(*problems)
        return self.webhook_secret.get_secret_value()

    def require_model(self) -> None:
        """Every agent, builtin or CLI, reaches its model through Mull's gateway, which forwards here."""
        problems = self.unmet(model=True)
        if problems:
            raise ConfigError(*problems)

    def secret_values(self) -> list[str]:
        """Every configured secret value, so logs can redact them wherever they appear."""
        values = [s.get_secret_value() for s in (self.private_key, self.webhook_secret, self.llm_api_key,
                                                 self.github_client_secret, self.session_bucket_secret) if s]
        if self.redis_url:
            values += redis_target.parse(self.redis_url).secrets()
        return [v for v in values if len(v) >= 6]


def load_settings(environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env") -> MullSettings:
    """Build settings from ``environ`` (default: the process environment) and ``env_file``.

    Raises ConfigError with every invalid variable named, instead of pydantic's raw report.
    """
    settings, problems = read_settings(environ, env_file)
    if problems:
        raise ConfigError(*problems)
    return settings


def read_settings(environ: Mapping[str, str] | None = None,
                  env_file: str | Path | None = ".env") -> tuple[MullSettings, list[str]]:
    """Settings with every invalid variable at its default, and what was wrong with each.

    The defaults stand in only so that what a command needs can be checked too: the caller reports the
    invalid values together with the missing ones, in one message, and starts nothing.
    """
    source = os.environ if environ is None else environ
    values: dict[str, Any] = {k[len(ENV_PREFIX):].lower(): v for k, v in source.items() if k.startswith(ENV_PREFIX)}
    env_path = Path(env_file) if env_file else None
    if env_path is not None and not env_path.is_file():
        env_path = None
    try:
        return _build(values, env_path), []
    except ValidationError as exc:
        errors = exc.errors()
    problems = list(dict.fromkeys(_worded(err) for err in errors))
    fields = MullSettings.model_fields
    bad = {str(err["loc"][0]) for err in errors if err["loc"] and str(err["loc"][0]) in fields}
    defaults = {name: fields[name].get_default(call_default_factory=True) for name in bad}
    try:
        return _build({**values, **defaults}, env_path), problems
    except ValidationError:  # one value's check needed another that is invalid: all defaults then
        return MullSettings.model_construct(), problems


def _build(values: dict[str, Any], env_path: Path | None) -> MullSettings:
    if env_path is not None:
        return MullSettings(_env_file=env_path, **values)  # type: ignore[call-arg]
    return MullSettings(**values)


def _worded(err: Any) -> str:
    """One of pydantic's errors as a line that names the variable, says what is wrong and how to fix it, and
    never repeats the value (it may be a secret)."""
    field = str(err["loc"][0]) if err["loc"] else ""
    name = ENV_PREFIX + field.upper()
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "value_error":  # a validator of Mull's: its words already say what to do
        return f"{name}: {ctx.get('error', err['msg'])}"
    what = {
        "int_parsing": "is not a whole number",
        "int_from_float": "is not a whole number",
        "bool_parsing": "is not true or false (write true or false)",
        "greater_than_equal": f"is below its least value, {ctx.get('ge')}",
        "less_than_equal": f"is above its largest value, {ctx.get('le')}",
        "string_too_short": "is empty",
        "string_too_long": f"is longer than {ctx.get('max_length')} characters",
        "json_invalid": "is not valid JSON",
    }.get(kind) or "is invalid (" + str(err["msg"]).rstrip(".").lower() + ")"
    info = MullSettings.model_fields.get(field)
    if info is None:
        return f"{name} {what}"
    default = info.get_default(call_default_factory=True)
    shown = str(default).lower() if isinstance(default, bool) else default
    fix = f"; unset it for the default, {shown}" if default not in (None, "", []) else ""
    return f"{name} {what}: {(info.description or 'see the README').rstrip('.')}{fix}"
