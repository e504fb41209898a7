"""The gateway lives inside the worker's event loop without taking it over, and keeps what it writes private.

Its socket is owner-only in an owner-only directory and gone after ``stop()``; SIGINT and SIGTERM stay with
the worker (uvicorn's ``serve()`` would have taken them); transcripts are 0600 and hold no secret.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from doubles.gateway_rig import CHAT, UPSTREAM_KEY, agent_client, chat, running_gateway
from doubles.model_server import ScriptedModel

from worker.gateway import ModelGateway
from worker.gateway.scrub import Scrubber

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="gw-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_start_and_stop_keep_the_workers_signal_handlers_and_leave_no_socket(scripted_model: ScriptedModel,
                                                                              short_dir: Path) -> None:
    scripted_model.script("srv-up", [{"content": "up"}])
    sock = short_dir / "gateway" / "model.sock"

    async def scenario() -> dict[str, object]:
        before = {sig: signal.getsignal(sig) for sig in SIGNALS}
        gateway = ModelGateway(scripted_model.url, UPSTREAM_KEY, sock, short_dir / "transcripts")
        await gateway.start()
        during = {sig: signal.getsignal(sig) for sig in SIGNALS}
        facts: dict[str, object] = {"is_socket": stat.S_ISSOCK(sock.lstat().st_mode), "socket_mode": _mode(sock),
                                    "dir_mode": _mode(sock.parent)}
        async with gateway.run("r1", "m", 5, 10_000) as grant, agent_client(gateway, grant.token) as client:
            facts["status"] = (await client.post(CHAT, json=chat("srv-up"))).status_code
        await gateway.stop()
        after = {sig: signal.getsignal(sig) for sig in SIGNALS}
        facts["signals"] = (before == during == after)
        facts["left"] = sorted(p.name for p in sock.parent.iterdir())
        return facts

    previous = {sig: signal.signal(sig, lambda *_: None) for sig in SIGNALS}  # handlers of the worker's own
    try:
        facts = asyncio.run(scenario())
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    assert facts == {"is_socket": True, "socket_mode": 0o600, "dir_mode": 0o700, "status": 200, "signals": True,
                     "left": []}


def test_a_stale_socket_is_replaced_but_other_files_and_open_directories_are_refused(short_dir: Path) -> None:
    gateway_dir = short_dir / "gateway"
    gateway_dir.mkdir(mode=0o700)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(gateway_dir / "stale.sock"))
    stale.close()
    (gateway_dir / "file.sock").write_text("not a socket")
    open_dir = short_dir / "open"
    open_dir.mkdir()
    open_dir.chmod(0o755)

    async def start_stop(path: Path) -> None:
        async with ModelGateway("http://127.0.0.1:9/v1", None, path, short_dir / "transcripts"):
            assert stat.S_ISSOCK(path.lstat().st_mode)

    asyncio.run(start_stop(gateway_dir / "stale.sock"))
    assert not (gateway_dir / "stale.sock").exists()
    with pytest.raises(FileExistsError, match="is not a socket"):
        asyncio.run(start_stop(gateway_dir / "file.sock"))
    assert (gateway_dir / "file.sock").read_text() == "not a socket"
    with pytest.raises(PermissionError, match="open to other users .*chmod 700"):
        asyncio.run(start_stop(open_dir / "model.sock"))
    with pytest.raises(ValueError, match="unix sockets allow 107"):
        asyncio.run(start_stop(gateway_dir / ("x" * 120)))


def test_the_transcript_is_private_complete_and_holds_no_secret(scripted_model: ScriptedModel) -> None:
    scripted_model.script("srv-log", [{"echo_headers": True}])
    redact = "ghs_installation_token_9d8e7f"

    async def scenario() -> tuple[Path, str, dict[str, int]]:
        async with running_gateway(scripted_model.url, redact=[redact]) as gateway:
            async with gateway.run("solve:42:7", "m", 5, 10_000) as grant, agent_client(gateway, grant.token) as client:
                body = chat("srv-log")
                body["messages"].append({"role": "user", "content": f"my key is {grant.token}, git uses {redact}"})
                assert (await client.post(CHAT, json=body)).status_code == 200
                token = grant.token
            modes = {"file": _mode(grant.transcript), "dir": _mode(grant.transcript.parent)}
            return grant.transcript, grant.transcript.read_text() + f"\n{token}", modes

    path, text, modes = asyncio.run(scenario())
    content, token = text.rsplit("\n", 1)
    assert path.name == "solve:42:7.jsonl"
    assert modes == {"file": 0o600, "dir": 0o700}
    assert token not in content and redact not in content and UPSTREAM_KEY not in content
    [record] = [json.loads(line) for line in content.splitlines()]
    assert record["route"] == CHAT and record["protocol"] == "openai" and record["status"] == 200
    assert record["request"]["messages"][-1]["content"] == "my key is [redacted], git uses [redacted]"
    assert "Bearer [redacted]" in record["response"]["choices"][0]["message"]["content"]
    assert record["usage"]["estimated"] is False and record["ms"] >= 0 and record["time"].endswith("+00:00")


@pytest.mark.parametrize("run_id", ["../escape", ".hidden", "a/b", "", "x" * 200])
def test_run_ids_that_are_not_plain_file_names_are_refused(short_dir: Path, run_id: str) -> None:
    gateway = ModelGateway("http://127.0.0.1:9/v1", None, short_dir / "s" / "m.sock", short_dir / "t")
    with pytest.raises(ValueError, match="not usable as a file name"):
        gateway.open_run(run_id, "m", 5, 100)
    assert list((short_dir / "t").iterdir()) == []


def test_a_run_is_opened_once_and_closed_once(short_dir: Path) -> None:
    gateway = ModelGateway("http://127.0.0.1:9/v1", None, short_dir / "s" / "m.sock", short_dir / "t")
    gateway.open_run("r1", "m", 5, 100)
    with pytest.raises(ValueError, match="already open"):
        gateway.open_run("r1", "m", 5, 100)
    assert gateway.close_run("r1").requests == 0
    with pytest.raises(KeyError, match="already closed"):
        gateway.close_run("r1")
    assert os.listdir(short_dir / "t") == ["r1.jsonl"]


def test_the_transcripts_quick_scrub_writes_what_a_full_walk_would() -> None:
    pem = "-----BEGIN KEY-----\nMIIBOgIBAAJB\n-----END KEY-----"
    scrubber = Scrubber(["sk-plain-key-123", pem, 'quo"te\\back', "654321"])
    clean = {"messages": [{"role": "user", "content": "nothing secret", "n": 654321}], "ms": 1.5}
    dirty = {"messages": [{"role": "user", "content": f"key sk-plain-key-123 and {pem}!"},
                          {"quo\"te\\back": ["x quo\"te\\back y", 654321]}], "ms": 654321}
    for record in (clean, dirty):
        assert scrubber.json(record) == orjson.dumps(scrubber.tree(record))
    assert b"sk-plain" not in scrubber.json(dirty) and b"BEGIN" not in scrubber.json(dirty)
    assert scrubber.json(dirty).count(b"[redacted]") == 4
