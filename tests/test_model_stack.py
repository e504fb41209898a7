"""The model stack is loaded when a run needs it, in a thread: a worker starts without it, and loading it never
stops the event loop (which runs the worker's heartbeat)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

import pytest

from worker.agent import model_stack


def test_a_worker_starts_without_the_model_stack() -> None:
    probe = ("import sys, worker.app, worker.ops.cli; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pydantic_ai', 'openai')))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_stack_is_imported_off_the_event_loop_and_once(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[str] = []
    for name in model_stack.MODULES:
        monkeypatch.delitem(sys.modules, name, raising=False)
    real = model_stack.importlib.import_module

    def recording(name: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name in model_stack.MODULES:
            threads.append(threading.current_thread().name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(model_stack.importlib, "import_module", recording)

    async def twice() -> str:
        await model_stack.load()
        await model_stack.load()
        return threading.current_thread().name

    loop_thread = asyncio.run(twice())
    assert len(threads) == len(model_stack.MODULES) and loop_thread not in threads
    assert all(name in sys.modules for name in model_stack.MODULES)
