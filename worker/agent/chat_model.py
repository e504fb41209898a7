"""The chat model the builtin agent, the critic and the plan talk to: one place that picks the provider."""

from __future__ import annotations

from urllib.parse import urlsplit

from openai import AsyncOpenAI
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers import Provider
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.providers.openai_compatible import OpenAICompatibleProvider


def provider_for(base_url: str, api_key: str | None) -> Provider[AsyncOpenAI]:
    """OpenAI itself gets its own provider; anything else the generic OpenAI-compatible one."""
    if urlsplit(base_url).hostname == "api.openai.com":
        return OpenAIProvider(base_url=base_url, api_key=api_key or "api-key-not-set")
    return OpenAICompatibleProvider("mull-llm", base_url=base_url, api_key=api_key)


def chat_model(base_url: str, api_key: str | None, model: str) -> OpenAIChatModel:
    return OpenAIChatModel(model, provider=provider_for(base_url, api_key))
