"""Settings: defaults, injection, and errors that name the variable to set."""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path

import pytest

from bot.settings import ConfigError, load_settings, read_settings


def test_defaults_match_the_public_contract() -> None:
    s = load_settings({}, env_file=None)
    assert (s.github_url, s.redis_url, s.data_dir, s.host, s.port, s.label) == (
        "https://api.github.com", None, Path(".mull"), "127.0.0.1", 8000, "mull")
    assert s.redis_embedded and s.sandbox
    assert s.worker_heartbeat == 20.0


def test_the_worker_heartbeat_sets_the_liveness_of_every_worker() -> None:
    """A short heartbeat (fast tests, quick failover) beats several times within its life."""
    from worker.ops.liveness import Liveness

    s = load_settings({"MULL_WORKER_HEARTBEAT": "2"}, env_file=None)
    liveness = Liveness(redis=None, ttl=s.worker_heartbeat)  # type: ignore[arg-type]
    assert (liveness.ttl, liveness.grace, liveness.interval) == (2.0, 2.0, 0.4)
    assert Liveness(redis=None, ttl=20.0).interval == 3.0  # type: ignore[arg-type]


def test_environment_is_injected_not_read(monkeypatch) -> None:
    monkeypatch.setenv("MULL_PORT", "1234")
    assert load_settings({}, env_file=None).port == 8000
    assert load_settings({"MULL_PORT": "9000", "OTHER": "x"}, env_file=None).port == 9000


def test_env_file_is_read(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("MULL_LABEL=agent\nMULL_APP_ID=42\n")
    s = load_settings({"MULL_APP_ID": "7"}, env_file=env)
    assert s.label == "agent" and s.app_id == 7  # the environment wins over .env


@pytest.mark.parametrize(("environ", "names"), [
    ({"MULL_PORT": "eighty"}, ["MULL_PORT"]),
    ({"MULL_PORT": "70000", "MULL_APP_ID": "x"}, ["MULL_PORT", "MULL_APP_ID"]),
    ({"MULL_LOG_LEVEL": "LOUD"}, ["MULL_LOG_LEVEL"]),
    ({"MULL_LABEL": ""}, ["MULL_LABEL"]),
    ({"MULL_SANDBOX": "perhaps"}, ["MULL_SANDBOX"]),
    ({"MULL_WORKER_HEARTBEAT": "0"}, ["MULL_WORKER_HEARTBEAT"]),
    ({"MULL_WORKER_HEARTBEAT": "soon"}, ["MULL_WORKER_HEARTBEAT"]),
])
def test_invalid_values_name_every_variable(environ, names) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ, env_file=None)
    for name in names:
        assert name in str(err.value)
    assert len(err.value.problems) == len(names)


@pytest.mark.parametrize(("environ", "line"), [
    ({"MULL_PORT": "s3cret-port"}, "MULL_PORT is not a whole number: Port the web server binds; unset it for the "
                                   "default, 8000"),
    ({"MULL_PORT": "70000"}, "MULL_PORT is above its largest value, 65535"),
    ({"MULL_AGENT_TIMEOUT": "5"}, "MULL_AGENT_TIMEOUT is below its least value, 10"),
    ({"MULL_SANDBOX": "s3cret"}, "MULL_SANDBOX is not true or false (write true or false)"),
    ({"MULL_APP_ID": "s3cret-id"}, "MULL_APP_ID is not a whole number: GitHub App id (from the App's settings page)"),
    ({"MULL_LOG_LEVEL": "s3cret"}, "MULL_LOG_LEVEL: must be one of DEBUG, INFO, WARNING, ERROR"),
])
def test_each_problem_says_what_is_wrong_and_how_to_fix_it_without_the_value(environ, line: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ, env_file=None)
    assert str(err.value).startswith(line)
    assert "s3cret" not in str(err.value)


def test_every_invalid_value_is_listed_in_one_message_one_line_each(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("MULL_WORKER_JOBS=many\n")  # .env values are checked alongside the environment
    environ = {"MULL_PORT": "http", "MULL_APP_ID": "abc", "MULL_GITHUB_URL": "github.example.com"}
    with pytest.raises(ConfigError) as err:
        load_settings(environ, env_file=env)
    lines = str(err.value).splitlines()
    assert lines[0] == "4 problems to fix before Mull can start:"
    assert sorted(line.split()[1] for line in lines[1:]) == ["MULL_APP_ID", "MULL_GITHUB_URL:", "MULL_PORT",
                                                             "MULL_WORKER_JOBS"]


def test_reading_leniently_keeps_the_valid_values_and_defaults_the_invalid_ones() -> None:
    settings, problems = read_settings({"MULL_PORT": "http", "MULL_APP_ID": "7", "MULL_LABEL": "bot"}, env_file=None)
    assert (settings.port, settings.app_id, settings.label) == (8000, 7, "bot")
    assert len(problems) == 1 and problems[0].startswith("MULL_PORT ")
    assert read_settings({"MULL_PORT": "9000"}, env_file=None)[1] == []


@pytest.mark.parametrize(("name", "value", "problem"), [
    ("MULL_GITHUB_URL", "api.github.com", "MULL_GITHUB_URL: has no scheme: write the whole URL, e.g. "
                                          "https://api.github.com"),
    ("MULL_GITHUB_URL", "ghe.example.com/api/v3", "MULL_GITHUB_URL: has no scheme"),
    ("MULL_LLM_BASE_URL", "localhost:11434/v1", "MULL_LLM_BASE_URL: has no scheme: write the whole URL, e.g. "
                                                "http://localhost:11434/v1"),
    ("MULL_LLM_BASE_URL", "ftp://user:s3cret@models.example/v1", "MULL_LLM_BASE_URL: has the scheme 'ftp': only "
                                                                 "http:// and https:// work here"),
    ("MULL_GITHUB_URL", "git://github.com", "MULL_GITHUB_URL: has the scheme 'git'"),
    ("MULL_LLM_BASE_URL", "http:///v1", "MULL_LLM_BASE_URL: is not a valid URL (no host"),
    ("MULL_LLM_BASE_URL", "http://models:port/v1", "MULL_LLM_BASE_URL: is not a valid URL (no host, a bad port"),
    ("MULL_LLM_BASE_URL", "http://models.example/ v1", "MULL_LLM_BASE_URL: is not a valid URL"),
])
def test_urls_without_a_scheme_or_with_another_are_refused(name: str, value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings({name: value}, env_file=None)
    assert str(err.value).startswith(problem)
    assert "s3cret" not in str(err.value)


def test_good_urls_are_kept_without_a_trailing_slash() -> None:
    settings = load_settings({"MULL_GITHUB_URL": "https://ghe.example.com/api/v3/",
                              "MULL_LLM_BASE_URL": "HTTP://127.0.0.1:11434/v1/"}, env_file=None)
    assert (settings.github_url, settings.llm_base_url) == ("https://ghe.example.com/api/v3",
                                                            "HTTP://127.0.0.1:11434/v1")


def test_missing_settings_say_what_to_set_all_at_once(tmp_path: Path) -> None:
    s = load_settings({}, env_file=None)
    assert [line.split()[0] for line in s.unmet(app=True, webhook=True, model=True)] == [
        "MULL_APP_ID", "MULL_PRIVATE_KEY", "MULL_WEBHOOK_SECRET", "MULL_LLM_BASE_URL", "MULL_LLM_MODEL"]
    with pytest.raises(ConfigError, match="MULL_APP_ID"):
        s.require_app()
    with pytest.raises(ConfigError, match="MULL_WEBHOOK_SECRET"):
        s.require_webhook_secret()
    with pytest.raises(ConfigError, match="MULL_PRIVATE_KEY"):
        load_settings({"MULL_APP_ID": "1"}, env_file=None).require_app()
    with pytest.raises(ConfigError, match="cannot be read"):
        load_settings({"MULL_APP_ID": "1", "MULL_PRIVATE_KEY_PATH": str(tmp_path / "nope.pem")},
                      env_file=None).require_app()
    with pytest.raises(ConfigError) as both:
        s.require_model()
    assert [line.split()[1] for line in str(both.value).splitlines()[1:]] == ["MULL_LLM_BASE_URL",
                                                                              "MULL_LLM_MODEL"]
    with pytest.raises(ConfigError, match="CLI agents alike"):  # a CLI agent reaches its model through the gateway
        load_settings({"MULL_AGENT_COMMAND": "aider {prompt_file}"}, env_file=None).require_model()
    load_settings({"MULL_LLM_BASE_URL": "http://llm/v1", "MULL_LLM_MODEL": "qwen"}, env_file=None).require_model()
    assert s.unmet() == []


def test_secret_values_are_listed_for_redaction_and_hidden_in_repr() -> None:
    s = load_settings({"MULL_WEBHOOK_SECRET": "hook-secret-value", "MULL_LLM_API_KEY": "sk-model-key"},
                      env_file=None)
    assert set(s.secret_values()) == {"hook-secret-value", "sk-model-key"}
    assert "hook-secret-value" not in repr(s)


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Mull's working directory (the cwd), a HOME, a key file, a data dir and a tools dir, side by side."""
    for folder in ("mull/.mull/worktrees", "users/me/.pyenv", "keys", "data/repos", "tools"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "keys" / "app.pem").write_text("PEM")
    monkeypatch.chdir(tmp_path / "mull")
    monkeypatch.setenv("HOME", str(tmp_path / "users" / "me"))
    return tmp_path


def test_sandbox_ro_paths_are_parsed_from_a_path_list_or_json(host: Path) -> None:
    assert load_settings({}, env_file=None).sandbox_ro_paths == []
    both = [host / "tools", host / "users" / "me" / ".pyenv"]  # below HOME is fine: a Python under ~/.pyenv
    assert load_settings({"MULL_SANDBOX_RO_PATHS": f"{both[0]}:{both[1]}"}, env_file=None).sandbox_ro_paths == both
    assert load_settings({"MULL_SANDBOX_RO_PATHS": json.dumps([str(p) for p in both])},
                         env_file=None).sandbox_ro_paths == both


@pytest.mark.parametrize(("listed", "extra", "problem"), [
    ("tools", {}, "tools is relative: give an absolute path"),
    ("{host}/missing", {}, "does not exist"),
    ("{host}", {}, "contains Mull's working directory"),
    ("{host}/mull/.mull/worktrees", {}, "lies inside Mull's working directory"),
    ("{host}/data/repos", {"MULL_DATA_DIR": "{host}/data"}, "lies inside MULL_DATA_DIR"),
    ("{host}/data", {"MULL_DATA_DIR": "{host}/data/repos"}, "contains MULL_DATA_DIR"),
    ("{host}/keys", {"MULL_PRIVATE_KEY_PATH": "{host}/keys/app.pem"}, "contains the App private key file"),
    ("{host}/keys/app.pem", {"MULL_PRIVATE_KEY_PATH": "../keys/app.pem"}, "contains the App private key file"),
    ("{host}/users/me", {}, "is the invoking user's HOME"),
    ("{host}/users", {}, "is the invoking user's HOME ({host}/users/me) or contains it"),
    ("/", {}, "contains Mull's working directory"),
])
def test_sandbox_ro_paths_refuse_what_would_expose_mull_or_home(host: Path, listed: str, extra: dict[str, str],
                                                                 problem: str) -> None:
    environ = {name: value.format(host=host) for name, value in
               {"MULL_SANDBOX_RO_PATHS": listed, **extra}.items()}
    with pytest.raises(ConfigError, match="MULL_SANDBOX_RO_PATHS") as caught:
        load_settings(environ, env_file=None)
    assert problem.format(host=host) in str(caught.value)


def test_sandbox_ro_paths_refuse_an_ancestor_of_the_real_home(host: Path) -> None:
    real = Path(pwd.getpwuid(os.getuid()).pw_dir)
    with pytest.raises(ConfigError, match="HOME"):
        load_settings({"MULL_SANDBOX_RO_PATHS": str(real)}, env_file=None)  # HOME is set elsewhere by `host`
