"""One provider choice for the agent, the critic and the plan: OpenAI's own for api.openai.com, else the generic
OpenAI-compatible one (vLLM, Ollama, LiteLLM, the tests' scripted model)."""

from __future__ import annotations

from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.providers.openai_compatible import OpenAICompatibleProvider

from worker.agent.chat_model import chat_model, provider_for


def test_openai_gets_its_own_provider_and_the_rest_the_compatible_one() -> None:
    assert type(provider_for("https://api.openai.com/v1", "sk-x")) is OpenAIProvider
    assert type(provider_for("http://127.0.0.1:9999/v1", None)) is OpenAICompatibleProvider
    assert provider_for("http://127.0.0.1:9999/v1", "k").base_url.startswith("http://127.0.0.1:9999/v1")


def test_chat_model_names_the_model() -> None:
    assert chat_model("http://127.0.0.1:9999/v1", "k", "qwen3-coder").model_name == "qwen3-coder"
