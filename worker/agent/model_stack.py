"""The model stack (pydantic-ai, the OpenAI SDK and Mull's runners on them), loaded off the event loop once a run
needs it.

It takes a second to import on an idle machine and several on a busy one. A worker that never runs the builtin
agent, critic or plan does not pay that at start; one that does pays it in a thread, because imported on the
event loop those seconds would stop everything the worker does meanwhile, its heartbeat too, which a short
``MULL_WORKER_HEARTBEAT`` would take for a dead worker.
"""

from __future__ import annotations

import asyncio
import importlib
import sys

MODULES = ("worker.agent.model_run", "worker.agent.builtin", "worker.critique.builtin",
           "worker.sessions.message_steps")


async def load() -> None:
    """Import the model stack in a thread; at once when it is there already."""
    if all(name in sys.modules for name in MODULES):
        return
    await asyncio.to_thread(_import_all)


def _import_all() -> None:
    for name in MODULES:
        importlib.import_module(name)
