"""The model checks of `mull try`: the probe against real servers, the diagnosis of recorded transcripts.

Every answer is one line that names the URL without its credentials and says what to change.
"""

from __future__ import annotations

import asyncio
import socket

import pytest
from doubles.model_server import ScriptedModel

from bot.settings import ConfigError
from worker.ops.model_check import diagnose, probe, shown_url

URL = "http://127.0.0.1:11434/v1"
TOOL_ANSWER = {"choices": [{"message": {"role": "assistant", "tool_calls": [{"id": "1", "type": "function"}]}}]}
TEXT_ANSWER = {"choices": [{"message": {"role": "assistant", "content": "I would edit app.py"}}]}


def test_shown_url_keeps_where_it_points_and_drops_what_could_be_secret() -> None:
    assert shown_url("https://user:sk-secret@llm.example.com:8443/v1/?api-key=sk-secret#x") == \
        "https://llm.example.com:8443/v1"
    assert shown_url("http://[::1]:11434/v1") == "http://[::1]:11434/v1"


def test_probe_passes_a_server_that_has_the_model_with_or_without_its_tag() -> None:
    with ScriptedModel(model_name="qwen2.5-coder:latest") as model:
        asyncio.run(probe(model.url, None, "qwen2.5-coder"))
        asyncio.run(probe(model.url, None, "qwen2.5-coder:latest"))
        with pytest.raises(ConfigError, match=r"has no model 'llama3' \(it has qwen2.5-coder:latest\)"):
            asyncio.run(probe(model.url, None, "llama3"))


def test_probe_sends_the_key_and_never_repeats_it() -> None:
    with ScriptedModel(api_key="sk-right-0123456789") as model:
        asyncio.run(probe(model.url, "sk-right-0123456789", "scripted"))
        with pytest.raises(ConfigError) as refused:
            asyncio.run(probe(model.url, "sk-wrong-0123456789", "scripted"))
    assert "refused the API key (HTTP 401)" in str(refused.value) and "sk-" not in str(refused.value)


def test_probe_gives_a_silent_server_a_deadline() -> None:
    with socket.socket() as listener:  # accepts connections (the kernel's backlog) and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
        with pytest.raises(ConfigError, match=r"did not answer within 0.5 s: is it running\?"):
            asyncio.run(probe(url, None, "m", seconds=0.5))


def test_probe_lets_a_server_without_a_model_list_through() -> None:
    """Some proxies serve chat but no /models under /v1: the run itself will tell."""
    with ScriptedModel() as model:
        asyncio.run(probe(model.base_url + "/v1/chat", None, "anything"))


@pytest.mark.parametrize(("records", "needs_tools", "expected"), [
    ([], True, None),
    ([{"status": 200, "response": TOOL_ANSWER}], True, None),
    ([{"status": 200, "response": {"text": "", "tool_calls": [{"id": "1", "name": "read_file"}]}}], True, None),
    ([{"status": 200, "response": {"content": [{"type": "tool_use", "name": "x"}]}}], True, None),
    ([{"status": 200, "response": TEXT_ANSWER}], False, None),  # a CLI agent may not use tool calls at all
    ([{"status": 200, "response": TEXT_ANSWER}] * 2, True,
     "the model 'm' at http://127.0.0.1:11434/v1 cannot call tools (it answered 2 time(s) in text, never with a tool "
     "call): Mull's agent needs a model with tool calling, e.g. qwen2.5-coder or llama3.1 (`ollama pull "
     "qwen2.5-coder`); set MULL_LLM_MODEL to one"),
    ([{"status": 200, "response": TOOL_ANSWER}, {"status": 500, "response": {"error": "boom"}}], True, None),
    ([{"status": 502, "response": None, "error": "the model endpoint at 127.0.0.1 could not be reached"}], True,
     "cannot connect to the model server at http://127.0.0.1:11434/v1: is it running? For Ollama: `ollama serve`; "
     "otherwise start your model server, or set MULL_LLM_BASE_URL to where it listens"),
    ([{"status": 403, "refused": "steps (1)"}, {"status": 500, "response": {"error": {"message": "out of memory"}}}],
     True, "the model server at http://127.0.0.1:11434/v1 answered HTTP 500 (out of memory): check MULL_LLM_BASE_URL "
     "and MULL_LLM_MODEL"),
    ([{"status": 404, "response": {"error": {"message": 'model "m" not found, try pulling it first'}}}], True,
     "the model server at http://127.0.0.1:11434/v1 has no model 'm' (model \"m\" not found, try pulling it first): "
     "set MULL_LLM_MODEL to one it has, or fetch it with `ollama pull m`"),
])
def test_diagnose(records, needs_tools: bool, expected: str | None) -> None:
    assert diagnose(records, URL, "m", needs_tools=needs_tools) == expected


def test_a_404_from_a_base_url_without_v1_asks_whether_v1_was_meant() -> None:
    records = [{"status": 404, "route": "/v1/chat/completions", "response": {"error": "404 page not found"}}]
    assert diagnose(records, "http://127.0.0.1:11434", "m", needs_tools=True) == (
        "the model server at http://127.0.0.1:11434 answered HTTP 404 for http://127.0.0.1:11434/chat/completions: "
        "did you mean http://127.0.0.1:11434/v1? OpenAI-compatible servers answer under /v1; set "
        "MULL_LLM_BASE_URL=http://127.0.0.1:11434/v1")
    assert "did you mean" not in (diagnose(records, URL, "m", needs_tools=True) or "")  # /v1 there: the model


def test_probe_of_a_base_url_without_v1_asks_whether_v1_was_meant() -> None:
    with ScriptedModel() as model:
        with pytest.raises(ConfigError) as missing_v1:
            asyncio.run(probe(model.base_url, None, "scripted"))
        asyncio.run(probe(model.url, None, "scripted"))
    assert str(missing_v1.value) == (
        f"the model server at {model.base_url} answered HTTP 404 for {model.base_url}/models: did you mean "
        f"{model.base_url}/v1? OpenAI-compatible servers answer under /v1; set MULL_LLM_BASE_URL={model.base_url}/v1")
