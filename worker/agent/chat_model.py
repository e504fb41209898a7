"""The chat model the builtin agent, the critic and the plan talk to: one place that picks the provider."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx2
import pydantic_ai
from openai import AsyncOpenAI
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers import Provider
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.providers.openai_compatible import OpenAICompatibleProvider

from bot.tls_context import client_context
from worker.agent.base import ModelAccess
from worker.gateway.client import BASE_URL as GATEWAY_URL


def provider_for(base_url: str, api_key: str | None) -> Provider[AsyncOpenAI]:
    """OpenAI itself gets its own provider; anything else the generic OpenAI-compatible one."""
    if urlsplit(base_url).hostname == "api.openai.com":
        return OpenAIProvider(base_url=base_url, api_key=api_key or "api-key-not-set")
    return OpenAICompatibleProvider("mull-llm", base_url=base_url, api_key=api_key)


MAX_REQUEST_SECONDS = 300.0  # one model answer; the run's wall clock bounds the whole


def _without_banner() -> None:
    """Mull owns its output (logs, ``mull try``'s progress): pydantic-ai's first-run banner, which a terminal
    would otherwise get on the first agent run of the process, is turned off with the switch it offers."""
    pydantic_ai.BANNER_ENABLED = False


def chat_model(base_url: str, api_key: str | None, model: str) -> OpenAIChatModel:
    _without_banner()
    return OpenAIChatModel(model, provider=provider_for(base_url, api_key))


def gateway_model(access: ModelAccess) -> OpenAIChatModel:
    """The run's model through Mull's gateway, over its unix socket: the run's token, never the real key."""
    _without_banner()
    # The OpenAI SDK speaks httpx2; the transport dials the gateway's socket, the URL's host is a placeholder.
    # Plain HTTP on the socket, but a transport builds a TLS context all the same: the process's shared one
    # costs nothing, a new one 30 ms per run.
    http = httpx2.AsyncClient(transport=httpx2.AsyncHTTPTransport(uds=str(access.socket), verify=client_context()),
                              timeout=httpx2.Timeout(MAX_REQUEST_SECONDS, connect=10.0))
    client = AsyncOpenAI(base_url=GATEWAY_URL, api_key=access.token, max_retries=0, http_client=http)
    return OpenAIChatModel(access.model, provider=OpenAICompatibleProvider("mull-gateway", openai_client=client))
