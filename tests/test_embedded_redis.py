"""The embedded Redis has no password, so only its owner may reach it: a unix socket (no TCP port at all),
mode 0700, in a directory of mode 0700 even when that directory existed with looser permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import redis

from bot.embedded_redis import EmbeddedRedis

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


def test_a_second_start_on_a_loosened_directory_tightens_it_again(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    try:
        (tmp_path / "redis").chmod(0o777)
        assert EmbeddedRedis(tmp_path / "redis").start() == server.url  # reuses the running server
        assert stat.S_IMODE((tmp_path / "redis").stat().st_mode) == 0o700
    finally:
        server.stop()
