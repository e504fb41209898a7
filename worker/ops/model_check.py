"""Is the configured model usable? Asked before a local run, and of a run that failed, in one line each.

A newcomer's first ``mull try`` most often fails on the model, not on Mull: the server is not running, the
base URL lacks ``/v1``, the key is wrong, the model is not pulled, or it cannot call tools. Each of those
should cost one line that names the URL (never the key) and the fix, not minutes of silence and a page of
retries. ``probe`` asks the endpoint's model list first (cheap, and every OpenAI-compatible server and
Anthropic's API have one); ``diagnose`` reads a failed run's transcript (``worker/gateway/transcript.py``)
for what only a real request shows, such as a model that cannot call tools.
"""

from __future__ import annotations

import errno
import json
import socket
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from bot.settings import ConfigError

PROBE_SECONDS = 10.0
OLLAMA_PORT = 11434
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0", "host.docker.internal"})  # noqa: S104 - compared, not bound
_LISTED = 8  # model names shown when the configured one is not among them
_TOOL_MODEL_HINT = "e.g. qwen2.5-coder or llama3.1"
_REASON_CHARS = 300


class ModelUnreachable(ConfigError):
    """No answer at all (refused, unknown host, timeout): the server may only be down for now, unlike a refused
    key or a wrong URL, so a worker starting up warns about it rather than refusing to start."""


def _one_line(text: str) -> str:
    """A server's words in one short line. (Not ``model_text.one_line``: that module loads pydantic-ai, which
    takes seconds, and this check runs first so that a dead server costs one.)"""
    line = " ".join(text.split())
    return line if len(line) <= _REASON_CHARS else line[:_REASON_CHARS] + "…"


def shown_url(url: str) -> str:
    """``url`` without user info, query or fragment: where it points, and nothing that could be a secret."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def _is_local(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in _LOCAL_HOSTS or host.startswith("127.")


def _is_ollama(url: str) -> bool:
    return urlsplit(url).port == OLLAMA_PORT


def _server_fix(url: str) -> str:
    if _is_local(url):
        return ("is it running? For Ollama: `ollama serve`; otherwise start your model server, or set "
                "MULL_LLM_BASE_URL to where it listens")
    return "check MULL_LLM_BASE_URL, and that this machine can reach that host"


def _auth_headers(api_key: str | None, anthropic: bool) -> dict[str, str]:
    if not api_key:
        return {}
    if anthropic:
        return {"x-api-key": api_key, "anthropic-version": "2023-06-01"}
    return {"authorization": f"Bearer {api_key}"}


async def probe(base_url: str, api_key: str | None, model: str, *, anthropic: bool = False,
                seconds: float = PROBE_SECONDS) -> None:
    """Raise ConfigError (one line: what is wrong at ``base_url`` and the fix) when the endpoint is unreachable,
    refuses the key, is not an OpenAI-compatible base URL, or lists its models without ``model``.

    An endpoint without a model list (some proxies) is given the benefit of the doubt: the run will tell.
    """
    shown = shown_url(base_url)
    async with httpx.AsyncClient(timeout=httpx.Timeout(seconds)) as client:
        try:
            response = await client.get(base_url.rstrip("/") + "/models", headers=_auth_headers(api_key, anthropic))
            body: Any = response.json() if response.status_code == 200 else None
        except httpx.TimeoutException:
            raise ModelUnreachable(f"the model server at {shown} did not answer within {seconds:g} s: "
                              f"{_server_fix(base_url)}") from None
        except httpx.HTTPError as exc:
            raise ModelUnreachable(f"cannot connect to the model server at {shown} ({_connect_reason(exc)}): "
                              f"{_server_fix(base_url)}") from None
        except ValueError:
            body = None  # a 200 that is not JSON: not a model list, so nothing to check it against
    if response.status_code in (401, 403):
        raise ConfigError(f"the model server at {shown} refused the API key (HTTP {response.status_code}): set "
                          "MULL_LLM_API_KEY to a valid key for it")
    if response.status_code == 404 and "/v1" not in urlsplit(base_url).path:
        raise ConfigError(_did_you_mean_v1(base_url, f"{shown}/models"))
    listed = _model_ids(body)
    if listed and not _lists(listed, model):
        raise ConfigError(_no_such_model(base_url, model, "it has " + ", ".join(_first(sorted(listed)))))


def _did_you_mean_v1(base_url: str, asked: str) -> str:
    shown = shown_url(base_url)
    return (f"the model server at {shown} answered HTTP 404 for {asked}: did you mean {shown}/v1? "
            f"OpenAI-compatible servers answer under /v1; set MULL_LLM_BASE_URL={shown}/v1")


def _connect_reason(exc: BaseException) -> str:
    """"connection refused", "host not found", or httpx's own words, from the innermost cause that says."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror):
            return "host not found"
        if isinstance(seen, OSError) and seen.errno == errno.ECONNREFUSED:
            return "connection refused"
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    if "refused" in text.lower() or "all connection attempts failed" in text.lower():
        return "connection refused"
    return _one_line(text) or type(exc).__name__


def _model_ids(body: object) -> set[str]:
    data = body.get("data") if isinstance(body, Mapping) else None
    if not isinstance(data, list):
        return set()
    return {str(item["id"]) for item in data if isinstance(item, Mapping) and item.get("id")}


def _lists(listed: set[str], model: str) -> bool:
    """Ollama lists ``name:latest`` and answers to ``name`` alone (and the other way round)."""
    return model in listed or f"{model}:latest" in listed or model.removesuffix(":latest") in listed


def _first(names: list[str]) -> list[str]:
    return names if len(names) <= _LISTED else [*names[:_LISTED], f"and {len(names) - _LISTED} more"]


def _no_such_model(base_url: str, model: str, detail: str) -> str:
    pull = f", or fetch it with `ollama pull {model}`" if _is_ollama(base_url) else ""
    return (f"the model server at {shown_url(base_url)} has no model '{model}' ({detail}): set MULL_LLM_MODEL to "
            f"one it has{pull}")


def _cannot_call_tools(base_url: str, model: str, why: str) -> str:
    pull = " (`ollama pull qwen2.5-coder`)" if _is_ollama(base_url) else ""
    return (f"the model '{model}' at {shown_url(base_url)} cannot call tools ({why}): Mull's agent needs a model "
            f"with tool calling, {_TOOL_MODEL_HINT}{pull}; set MULL_LLM_MODEL to one")


def read_transcript(path: Path) -> list[dict[str, Any]]:
    """The records of a run's transcript; none if it was never written."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def diagnose(records: Iterable[Mapping[str, Any]], base_url: str, model: str, *, needs_tools: bool) -> str | None:
    """One line when a run's model requests show the model itself is unusable, else None.

    Unusable means no request got an answer (the first refusal says why), or, for an agent that works only
    through tool calls (``needs_tools``), that every answer came without one. A run that got answers and then
    failed is a run that went wrong, reported by the run itself.
    """
    records = list(records)
    answered = [record for record in records if record.get("status") == 200]
    if answered:
        if needs_tools and not any(_called_a_tool(record.get("response")) for record in answered):
            return _cannot_call_tools(base_url, model, f"it answered {len(answered)} time(s) in text, never "
                                                       "with a tool call")
        return None
    failed = next((record for record in records if int(record.get("status") or 0) >= 400
                   and not record.get("refused")), None)
    if failed is None:
        return None
    status, why = int(failed["status"]), _message(failed)
    shown = shown_url(base_url)
    if status == 502 and failed.get("error"):
        return f"cannot connect to the model server at {shown}: {_server_fix(base_url)}"
    if status == 504 and failed.get("error"):
        return f"the model server at {shown} did not answer in time: {_server_fix(base_url)}"
    if status in (401, 403):
        return (f"the model server at {shown} refused the API key (HTTP {status}): set MULL_LLM_API_KEY to a "
                "valid key for it")
    if status == 400 and "tool" in why.lower():
        return _cannot_call_tools(base_url, model, why)
    if status == 404 and "/v1" not in urlsplit(base_url).path:
        return _did_you_mean_v1(base_url, shown + str(failed.get("route") or "/chat/completions").removeprefix("/v1"))
    if status == 404 or (status == 400 and "model" in why.lower() and "not" in why.lower()):
        return _no_such_model(base_url, model, why)
    return f"the model server at {shown} answered HTTP {status} ({why}): check MULL_LLM_BASE_URL and MULL_LLM_MODEL"


def _message(record: Mapping[str, Any]) -> str:
    """What the upstream (or the gateway) said about a failed request, in one line."""
    response = record.get("response")
    error: Any = response.get("error", response) if isinstance(response, Mapping) else response
    if isinstance(error, Mapping):
        error = error.get("message") or error.get("type") or ""
    text = str(error or record.get("error") or "no reason given")
    return _one_line(text)


def _called_a_tool(response: object) -> bool:
    """Whether an answer (OpenAI's, the gateway's record of a stream, or Anthropic's) holds a tool call."""
    if not isinstance(response, Mapping):
        return False
    if response.get("tool_calls"):
        return True
    for choice in response.get("choices") or []:
        if isinstance(choice, Mapping) and isinstance(choice.get("message"), Mapping) and \
                choice["message"].get("tool_calls"):
            return True
    content = response.get("content")
    return isinstance(content, list) and any(isinstance(part, Mapping) and part.get("type") == "tool_use"
                                             for part in content)
