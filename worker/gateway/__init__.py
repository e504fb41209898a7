"""The per-run model gateway: the only way out of the sandbox, and the only holder of the model API key.

    async with ModelGateway(base_url, api_key, data_dir / "gateway" / "model.sock", data_dir / "transcripts",
                            redact=[github_token]) as gateway:
        async with gateway.run("solve:42:7", model, steps=40, tokens=400_000) as grant:
            # the agent gets base URL .../v1 and grant.token as its API key; the runner watches
            # grant.out_of_budget and reads grant.usage (grant.meter.tripped says which budget ran out)
            ...

Modules: ``server`` (lifecycle, runs), ``connections`` (how many, how idle, how large a head), ``app``
(routes, auth, budgets, the order of checks), ``turns`` (one request at a time per run), ``body`` (reading and
parsing a body within limits), ``forward`` (upstream, streaming), ``allowlist`` (what of a request may leave),
``exchange`` (a request's accounting and record), ``runs`` (tokens, meters), ``openai_chat`` /
``anthropic_messages`` (protocols), ``sse`` (event splitting), ``scrub`` (secret removal), ``transcript``
(the run's JSON lines), ``client`` (in-process access over the socket).
"""

from worker.gateway.client import BASE_URL, gateway_client
from worker.gateway.runs import RunGrant, RunUsage, UsageMeter
from worker.gateway.server import ModelGateway

__all__ = ["BASE_URL", "ModelGateway", "RunGrant", "RunUsage", "UsageMeter", "gateway_client"]
