"""The sandbox's allow-list: entries and how they match, the operator's setting, and a repository's narrowing."""

from __future__ import annotations

import pytest

from bot.egress_hosts import DEFAULT_ALLOW, BadHostEntry, parse_entry, parse_list, split, uncovered
from bot.settings import ConfigError, load_settings
from worker.egress.policy import EgressPolicy
from worker.repo_config import ConfigFileError, Defaults, parse_config

SRC = "acme/widget:.github/mull.yml"
OPERATOR = ("pypi.org", "*.pythonhosted.org", "registry.internal:8443", "10.1.2.3:5000")
DEFAULTS = Defaults(sandbox_allowed=OPERATOR)


# -- entries and matching ------------------------------------------------------------------------------

def test_a_name_matches_itself_on_https_and_http_only() -> None:
    rule = parse_entry("PyPI.org.")
    assert rule.matches("pypi.org", 443) and rule.matches("pypi.org", 80)
    assert not rule.matches("pypi.org", 22)
    assert not rule.matches("evil-pypi.org", 443) and not rule.matches("pypi.org.evil.com", 443)
    assert not rule.matches("www.pypi.org", 443)


def test_a_wildcard_matches_subdomains_but_not_the_domain_itself() -> None:
    rule = parse_entry("*.pythonhosted.org")
    assert rule.matches("files.pythonhosted.org", 443) and rule.matches("a.b.pythonhosted.org", 80)
    assert not rule.matches("pythonhosted.org", 443)
    assert not rule.matches("evilpythonhosted.org", 443)


def test_a_port_entry_allows_that_port_only() -> None:
    rule = parse_entry("registry.internal:8443")
    assert rule.matches("registry.internal", 8443)
    assert not rule.matches("registry.internal", 443) and not rule.matches("registry.internal", 80)
    assert str(rule) == "registry.internal:8443"


def test_addresses_are_entries_too() -> None:
    assert parse_entry("127.0.0.1:8080").matches("127.0.0.1", 8080)
    rule = parse_entry("[FD00::1]:8443")
    assert rule.host == "fd00::1" and rule.matches("fd00::1", 8443) and str(rule) == "[fd00::1]:8443"


@pytest.mark.parametrize(("entry", "problem"), [
    ("https://pypi.org", "is a URL or a path, not a host"),
    ("pypi.org/simple", "is a URL or a path, not a host"),
    ("pypi.org:0", "has a port that is not a number from 1 to 65535"),
    ("pypi.org:65536", "has a port that is not a number from 1 to 65535"),
    ("pypi.org:https", "has a port that is not a number from 1 to 65535"),
    ("*", "has a '*' that is not a leading '*.'"),
    ("*.com", "covers a whole top-level domain"),
    ("a.*.example.com", "has a '*' that is not a leading '*.'"),
    ("*.10.0.0.1", "puts a wildcard before an IP address"),
    ("user@pypi.org", "is not a host name"),
    ("-bad-.org", "is not a host name"),
    ("bücher.example", "write it in ASCII"),
    ("fd00::1", "write it in brackets"),
    ("[fd00::1", "never closes it"),
    ("", "is empty"),
])
def test_bad_entries_say_what_is_wrong_and_how_to_write_it(entry: str, problem: str) -> None:
    with pytest.raises(BadHostEntry) as err:
        parse_entry(entry)
    assert problem in str(err.value)


def test_a_bad_entry_in_a_list_is_named_by_its_position_and_never_echoed() -> None:
    with pytest.raises(BadHostEntry) as err:
        parse_list(["pypi.org", "https://user:s3cret@pypi.org"])
    assert str(err.value).startswith("entry 2 is a URL")
    assert "s3cret" not in str(err.value)


def test_coverage_is_how_a_repository_may_only_narrow() -> None:
    granted = parse_list(OPERATOR)
    assert uncovered(granted, parse_list(["pypi.org", "files.pythonhosted.org", "*.cdn.pythonhosted.org",
                                          "pypi.org:443", "registry.internal:8443"])) == []
    wider = parse_list(["*.pypi.org", "pythonhosted.org", "pypi.org:8080", "registry.internal", "evil.com"])
    assert [str(rule) for rule in uncovered(granted, wider)] == ["*.pypi.org", "pythonhosted.org",
                                                                 "pypi.org:8080", "registry.internal", "evil.com"]


def test_the_default_list_parses_and_covers_the_common_registries() -> None:
    rules = parse_list(split(DEFAULT_ALLOW))
    for host in ("pypi.org", "files.pythonhosted.org", "registry.npmjs.org", "crates.io", "static.crates.io",
                 "index.crates.io", "proxy.golang.org", "sum.golang.org", "rubygems.org", "repo.maven.apache.org",
                 "github.com", "codeload.github.com", "objects.githubusercontent.com"):
        assert any(rule.matches(host, 443) for rule in rules), host


# -- the policy ---------------------------------------------------------------------------------------

def test_the_policy_says_who_can_allow_a_refused_host() -> None:
    policy = EgressPolicy.of(OPERATOR, ["pypi.org"])
    assert policy.refusal("pypi.org", 443) is None
    narrowed = policy.refusal("files.pythonhosted.org", 443)
    assert narrowed and "`network.allow`" in narrowed and "add `files.pythonhosted.org` there" in narrowed
    outside = policy.refusal("evil.com", 8080)
    assert outside and "MULL_SANDBOX_ALLOW_HOSTS" in outside and "`evil.com:8080`" in outside
    shut = policy.shut("the agent's commands get no network here")
    assert shut.refusal("pypi.org", 443) == "the agent's commands get no network here"
    assert "operator's allow-list" in (shut.refusal("evil.com", 443) or "")


def test_only_an_exact_operator_entry_lets_a_host_be_private() -> None:
    policy = EgressPolicy.of(OPERATOR, ["registry.internal:8443", "files.pythonhosted.org"])
    assert policy.may_be_private("registry.internal", 8443)
    assert not policy.may_be_private("files.pythonhosted.org", 443)  # listed through a wildcard only
    assert not policy.may_be_private("registry.internal", 443)


def test_a_repository_entry_outside_the_operators_list_is_never_honoured() -> None:
    policy = EgressPolicy.of(OPERATOR, ["pypi.org", "evil.com"])  # the config check stops this earlier
    assert policy.refusal("evil.com", 443) is not None


def test_an_empty_operator_list_allows_nothing() -> None:
    policy = EgressPolicy.of(())
    assert policy.rules == () and policy.refusal("pypi.org", 443) is not None


# -- the operator's setting ---------------------------------------------------------------------------

def test_the_setting_defaults_to_the_registries_and_may_be_emptied() -> None:
    assert load_settings({}, env_file=None).sandbox_allowed == tuple(split(DEFAULT_ALLOW))
    assert load_settings({"MULL_SANDBOX_ALLOW_HOSTS": ""}, env_file=None).sandbox_allowed == ()
    settings = load_settings({"MULL_SANDBOX_ALLOW_HOSTS": " pypi.org, *.example.org ,host:8080,"}, env_file=None)
    assert settings.sandbox_allowed == ("pypi.org", "*.example.org", "host:8080")
    assert Defaults.from_settings(settings).sandbox_allowed == settings.sandbox_allowed


@pytest.mark.parametrize(("value", "problem"), [
    ("pypi.org,https://user:s3cret@files.example", "entry 2 is a URL or a path, not a host"),
    ("pypi.org:99999", "entry 1 has a port that is not a number from 1 to 65535"),
    ("*", "entry 1 has a '*' that is not a leading"),
])
def test_bad_settings_stop_startup_naming_the_variable_and_the_entry(value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings({"MULL_SANDBOX_ALLOW_HOSTS": value}, env_file=None)
    assert str(err.value).startswith(f"MULL_SANDBOX_ALLOW_HOSTS: {problem}")
    assert "s3cret" not in str(err.value)


# -- a repository's network section -------------------------------------------------------------------

def test_a_repository_narrows_and_switches_agent_network_on() -> None:
    config = parse_config("network:\n  allow: [PyPI.org, files.pythonhosted.org, 'registry.internal:8443']\n"
                          "  agent: true\n", SRC, DEFAULTS)
    assert config.network.allow == ["pypi.org", "files.pythonhosted.org", "registry.internal:8443"]
    assert config.network.agent is True
    default = parse_config("", SRC, DEFAULTS).network
    assert default.allow is None and default.agent is False


def test_a_repository_trying_to_widen_the_list_gets_an_error_naming_the_key_and_host() -> None:
    with pytest.raises(ConfigFileError) as err:
        parse_config("network:\n  allow: [pypi.org, evil.example.com, 'pypi.org:8080']\n", SRC, DEFAULTS)
    problems = err.value.problems
    assert [problem.key for problem in problems] == ["network.allow", "network.allow"]
    assert "'evil.example.com' is outside what the operator allows in MULL_SANDBOX_ALLOW_HOSTS" in problems[0].message
    assert "pypi.org, *.pythonhosted.org, registry.internal:8443" in problems[0].message
    assert "'pypi.org:8080'" in problems[1].message


def test_with_no_operator_list_any_repository_entry_is_an_error() -> None:
    with pytest.raises(ConfigFileError) as err:
        parse_config("network:\n  allow: [pypi.org]\n", SRC, Defaults(sandbox_allowed=()))
    assert "no network at all" in err.value.message and err.value.key == "network.allow"


def test_an_org_file_cannot_widen_either() -> None:
    with pytest.raises(ConfigFileError) as err:
        parse_config("label: mull\n", SRC, DEFAULTS, {"network": {"allow": ["evil.com"]}})
    assert err.value.key == "network.allow"


@pytest.mark.parametrize(("text", "problem"), [
    ("network:\n  allow: ['https://pypi.org']\n", "entry 1 is a URL or a path, not a host"),
    ("network:\n  allow: [pypi.org, 'pypi.org:70000']\n", "entry 2 has a port that is not a number"),
    ("network:\n  allow: pypi.org\n", "must be a list of host names"),
    ("network:\n  agent: perhaps\n", "must be true or false"),
    ("network:\n  allowed: [pypi.org]\n", "unknown key 'allowed' in `network` (did you mean 'allow'?)"),
])
def test_bad_network_values_are_config_errors_naming_the_key(text: str, problem: str) -> None:
    with pytest.raises(ConfigFileError) as err:
        parse_config(text, SRC, DEFAULTS)
    assert problem in err.value.message, err.value.message
    assert (err.value.key or "").startswith("network")
