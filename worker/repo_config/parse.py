"""From the text of ``.github/mull.yml`` to validated settings, every problem pinned to its line and key.

A file is validated on its own (on top of neutral defaults), so an error always names the file that
has it, and the result (its *overrides*: the keys it sets, normalised) depends on nothing but its text,
which is what lets the loader cache it per blob SHA. Layers then merge per key: defaults, org, repo.
"""

from __future__ import annotations

from difflib import get_close_matches
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bot import egress_hosts
from worker.repo_config.errors import ConfigFileError, Problem
from worker.repo_config.schema import Defaults, RepoConfig
from worker.views.sink_address import SinkPolicy, literal_refusal

MAX_BYTES = 64 * 1024
MAX_BRACKETS = 256  # PyYAML's scanner is quadratic in flow nesting: 64 kB of '[' would take minutes
STR_TAG = "tag:yaml.org,2002:str"
MERGE_TAG = "tag:yaml.org,2002:merge"
NULL_TAG = "tag:yaml.org,2002:null"
SECTIONS = frozenset(name for name, f in RepoConfig.model_fields.items()
                     if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel))
_SECRET_WORDS = ("secret", "token", "password", "api_key", "apikey")
_NEUTRAL = Defaults()
_LISTED_HOSTS = 20  # of the operator's hosts named in an error


def parse_config(text: str, source: str, defaults: Defaults, base: dict[str, Any] | None = None) -> RepoConfig:
    """The settings ``text`` gives on top of ``defaults`` and ``base`` (the org file's overrides)."""
    return build(defaults, base or {}, parse_overrides(text, source), source=source)


def build(defaults: Defaults, *layers: dict[str, Any], source: str = "the repository's .github/mull.yml") -> RepoConfig:
    """Merge validated layers per key over the deployment's defaults; later layers win.

    A layer may only name an agent preset the operator enabled: a repository must not choose what runs. Nor
    may it aim a sink at a loopback or private address the operator has not allowed (the per-deployment part of
    validation, so it is done here and not in the cached per-file parse).
    """
    merged = defaults.config().model_dump(mode="json")
    for layer in layers:
        merged = merge(merged, layer)
    config = RepoConfig.model_validate(merged)
    if config.agent_command and config.agent_command not in defaults.agent_presets:
        raise ConfigFileError(source, [Problem(_preset_refused(config.agent_command, defaults),
                                                           key="agent_command")])
    policy = SinkPolicy(defaults.sink_allowed)
    refused = [Problem(reason, key=f"sinks.{name}") for name in ("slack_webhook", "json_webhook")
               if (url := getattr(config.sinks, name)) and (reason := literal_refusal(url, policy))]
    refused += [Problem(_host_refused(rule, defaults), key="network.allow") for rule in _widening(config, defaults)]
    if refused:
        raise ConfigFileError(source, refused)
    return config


def _widening(config: RepoConfig, defaults: Defaults) -> list[egress_hosts.HostRule]:
    """The entries of ``network.allow`` outside the operator's list: a repository may narrow it, never widen it."""
    if config.network.allow is None:
        return []
    return egress_hosts.uncovered(egress_hosts.parse_list(defaults.sandbox_allowed),
                                  egress_hosts.parse_list(config.network.allow))


def _host_refused(rule: egress_hosts.HostRule, defaults: Defaults) -> str:
    listed = defaults.sandbox_allowed
    shown = ", ".join(listed[:_LISTED_HOSTS]) + (f" and {len(listed) - _LISTED_HOSTS} more"
                                                 if len(listed) > _LISTED_HOSTS else "")
    allowed = f"this Mull allows {shown}" if listed else "this Mull allows sandboxed commands no network at all"
    return (f"'{rule}' is outside what the operator allows in MULL_SANDBOX_ALLOW_HOSTS ({allowed}); a repository "
            "may only narrow that list: remove the entry, or ask the operator to add it")


def _preset_refused(name: str, defaults: Defaults) -> str:
    enabled = ", ".join(defaults.agent_presets)
    allowed = f"this Mull lets repositories pick {enabled}" if enabled else \
        "this Mull lets no repository pick its agent"
    return (f"'{name}' is not enabled: {allowed} (the operator's MULL_AGENT_PRESETS); remove `agent_command` "
            "or ask the operator to enable the preset")


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Per key, ``override`` wins; mappings merge key by key, lists and scalars are replaced.

    An empty section (``models:`` with its keys commented out) overrides nothing.
    """
    out = dict(base)
    for key, value in override.items():
        if isinstance(out.get(key), dict) and isinstance(value, dict):
            out[key] = merge(out[key], value)
        elif not (value is None and isinstance(out.get(key), dict)):
            out[key] = value
    return out


def parse_overrides(text: str, source: str) -> dict[str, Any]:
    """The keys the file sets, validated and normalised; raises ConfigFileError naming line, key and rule."""
    size = len(text.encode())
    if size > MAX_BYTES:
        raise ConfigFileError(source, [Problem(f"is {size} bytes; the limit is {MAX_BYTES // 1024} kB")])
    brackets = text.count("[") + text.count("{")
    if brackets > MAX_BRACKETS:
        raise ConfigFileError(source, [Problem(
            f"has {brackets} '[' and '{{' characters; a config file needs far fewer (the limit is {MAX_BRACKETS})")])
    node, data = _load_yaml(text, source)
    if node is None or (isinstance(node, ScalarNode) and node.tag == NULL_TAG):  # empty, or a bare `---`
        return {}
    if not isinstance(node, MappingNode) or not isinstance(data, dict):
        kind = "a list" if isinstance(node, SequenceNode) else "a single value"
        raise ConfigFileError(source, [Problem(
            f"the file must be a mapping of keys such as `label: mull`, not {kind}", node.start_mark.line + 1)])
    label = data.get("label") if isinstance(data.get("label"), str) else None
    try:
        model = RepoConfig.model_validate(merge(_NEUTRAL.config().model_dump(mode="json"), data))
    except ValidationError as exc:
        raise ConfigFileError(source, [_problem(err, node) for err in exc.errors()], label=label) from None
    return _restrict(model.model_dump(mode="json"), data)


def _load_yaml(text: str, source: str) -> tuple[Node | None, Any]:
    """Compose first (the node tree keeps line numbers), then construct the data from it."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        problems = [] if node is None else _key_problems(node)
        if problems:  # checked before construction, which folds YAML merge keys into the tree
            raise ConfigFileError(source, problems)
        return node, None if node is None else loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ConfigFileError(source, [Problem(_yaml_message(exc), mark.line + 1 if mark else None)]) from None
    except yaml.YAMLError as exc:
        raise ConfigFileError(source, [Problem(f"is not valid YAML: {exc}")]) from None
    except RecursionError:
        raise ConfigFileError(source, [Problem("is nested too deeply to be a config file")]) from None
    finally:
        loader.dispose()


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    problem = exc.problem or "syntax error"
    if "'\\t'" in problem:
        return "is not valid YAML: a tab character; indent with spaces"
    context = f" ({exc.context}" if exc.context else ""
    if context and exc.context_mark and exc.problem_mark and exc.context_mark.line != exc.problem_mark.line:
        context += f" that starts on line {exc.context_mark.line + 1}"
    context += ")" if context else ""
    return f"is not valid YAML: {problem}{context}"


def _key_problems(root: Node) -> list[Problem]:
    """Duplicate and non-name keys, which YAML loaders accept silently (the last duplicate would win)."""
    problems: list[Problem] = []
    seen: set[int] = set()
    stack: list[tuple[Node, str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, SequenceNode):
            stack.extend((item, f"{path}[{i}]") for i, item in enumerate(node.value))
        if not isinstance(node, MappingNode):
            continue
        first: dict[str, int] = {}
        for key, value in node.value:
            line = key.start_mark.line + 1
            if isinstance(key, ScalarNode) and key.tag == MERGE_TAG:
                continue
            if not isinstance(key, ScalarNode) or key.tag != STR_TAG:
                shown = f"'{key.value}' " if isinstance(key, ScalarNode) else ""
                problems.append(Problem(f"the key {shown}is not read as a name (YAML typed it); quote it",
                                        line, path or None))
                continue
            dotted = f"{path}.{key.value}" if path else key.value
            if key.value in first:
                problems.append(Problem(f"appears twice (first on line {first[key.value]}); keep one", line, dotted))
            first.setdefault(key.value, line)
            stack.append((value, dotted))
    return problems


def _problem(err: ErrorDetails, root: Node) -> Problem:
    """Word one pydantic error for a person: the key, its line, and what the key accepts."""
    loc = err["loc"]
    line = _line_of(root, loc)
    path = _dotted(loc)
    if err["type"] == "extra_forbidden":
        return Problem(_unknown_key(str(loc[-1]), loc[:-1]), line, path)
    if err["type"] == "value_error":
        return Problem(str(err.get("ctx", {}).get("error", err["msg"])), line, path)
    field = _field_at(loc)[1]
    allowed = _allowed(field) if field else err["msg"]
    entry = "every entry must be a string: " if loc and isinstance(loc[-1], int) else "must be "
    return Problem(f"{entry}{allowed}{_got(err['input'], loc)}", line, path)


def _unknown_key(key: str, parent: tuple[int | str, ...]) -> str:
    model = _field_at(parent)[0] if parent else RepoConfig
    allowed = list(model.model_fields) if model else []
    where = f" in `{_dotted(parent)}`" if parent else ""
    message = f"unknown key '{key}'{where}"
    close = get_close_matches(key, allowed, n=1, cutoff=0.6)
    # A key of a section written at the top (`steps:`) is that key, before any near spelling of a top key.
    nested = [f"{s}.{key}" for s in sorted(SECTIONS)
              if not parent and key in (_field_at((s,))[0] or RepoConfig).model_fields]
    if nested or close:
        message += f" (did you mean '{(nested or close)[0]}'?)"
    message += f"; allowed keys: {', '.join(allowed)}"
    if any(word in key.lower() for word in _SECRET_WORDS) and not key.endswith("_env"):
        message += ("; secrets never go in this file: put the secret in an environment variable of the Mull "
                    "deployment and name that variable in `sinks.json_secret_env`")
    return message


def _field_at(loc: tuple[int | str, ...]) -> tuple[type[BaseModel] | None, FieldInfo | None]:
    """The model reached by following ``loc`` (None past a leaf), and the last field on the way."""
    model: type[BaseModel] | None = RepoConfig
    field: FieldInfo | None = None
    for part in loc:
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            model = None
            continue
        field = model.model_fields[part]
        annotation = field.annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return model, field


def _allowed(field: FieldInfo) -> str:
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    return str(extra.get("allowed", "a valid value"))


def _got(value: Any, loc: tuple[int | str, ...]) -> str:
    """Echo short scalars so the user sees what was read; never a sink's value, which may be a credential."""
    if loc and loc[0] == "sinks":
        return ""
    if value is None:
        return " (it is empty)"
    if isinstance(value, bool):
        return f" (YAML read `{str(value).lower()}`: unquoted yes, no, on and off are booleans; quote it)"
    if isinstance(value, str | int | float):
        text = str(value).replace("`", "'")
        return f" (got `{text[:40]}{'…' if len(text) > 40 else ''}`)"
    if isinstance(value, list | dict):
        return f" (got {'a list' if isinstance(value, list) else 'a mapping'})"
    return ""


def _line_of(root: Node, loc: tuple[int | str, ...]) -> int | None:
    """The line of the deepest key (or list entry) of ``loc`` present in the file."""
    node: Node = root
    line: int | None = None
    for part in loc:
        if isinstance(node, MappingNode) and isinstance(part, str):
            found = [(k, v) for k, v in node.value if isinstance(k, ScalarNode) and k.value == part]
            if not found:
                break
            key, node = found[-1]
            line = key.start_mark.line + 1
        elif isinstance(node, SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _restrict(dumped: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
    """The normalised values of just the keys the file sets: its layer to merge."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, dict) and isinstance(dumped.get(key), dict):
            out[key] = _restrict(dumped[key], value)
        elif not (value is None and key in SECTIONS):
            out[key] = dumped[key]
    return out
