"""MULL_REDIS_URL: one server or a master found through Sentinel; a bad URL is refused at start-up in one line,
and no password in it ever reaches a message or a log line."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.sentinel import SentinelConnectionPool

from bot import redis_target
from bot.redaction import Redactor
from bot.redis_target import RedisUrlError, parse
from bot.settings import ConfigError, load_settings
from worker.ops import cli

PASSWORD = "hunter2-data-password"
SENTINEL_PASSWORD = "sentinel-only-password"


@pytest.mark.parametrize(("url", "sentinels", "master", "db", "tls"), [
    ("redis+sentinel://10.0.0.1:26379,10.0.0.2:26380/mymaster", (("10.0.0.1", 26379), ("10.0.0.2", 26380)),
     "mymaster", 0, False),
    ("redis+sentinel://sentinel-a,sentinel-b/cache/3", (("sentinel-a", 26379), ("sentinel-b", 26379)), "cache", 3,
     False),
    ("rediss+sentinel://[::1]:5000/m%20one/1", (("::1", 5000),), "m one", 1, True),
    ("REDIS+SENTINEL://h/m", (("h", 26379),), "m", 0, False),
])
def test_sentinel_urls(url: str, sentinels: tuple, master: str, db: int, tls: bool) -> None:
    target = parse(url)
    assert (target.sentinel, target.sentinels, target.master, target.db, target.tls) == (True, sentinels, master,
                                                                                         db, tls)


def test_passwords_for_the_master_and_for_the_sentinels_are_apart() -> None:
    target = parse(f"redis+sentinel://mull:{PASSWORD.replace('-', '%2D')}@h1,h2/mymaster/2"
                   f"?sentinel_password={SENTINEL_PASSWORD}&sentinel_username=watcher")
    assert (target.username, target.password) == ("mull", PASSWORD)
    assert (target.sentinel_username, target.sentinel_password) == ("watcher", SENTINEL_PASSWORD)
    assert target.secrets() == [PASSWORD, SENTINEL_PASSWORD]
    shown = repr(target) + target.describe()
    assert PASSWORD not in shown and SENTINEL_PASSWORD not in shown
    assert target.describe() == "master 'mymaster' (db 2) via Sentinel h1:26379,h2:26379"


def test_the_sentinel_client_asks_the_sentinels_with_their_own_password() -> None:
    target = parse(f"redis+sentinel://:{PASSWORD}@10.0.0.1:26379/mymaster/2?sentinel_password={SENTINEL_PASSWORD}")
    client = target.client(Redis, keep_trying=1, socket_timeout=3)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "mymaster"
    assert (pool.connection_kwargs["password"], pool.connection_kwargs["db"]) == (PASSWORD, 2)
    [sentinel] = pool.sentinel_manager.sentinels
    asked = sentinel.connection_pool.connection_kwargs
    assert (asked["host"], asked["port"], asked["password"], asked["socket_timeout"]) == (
        "10.0.0.1", 26379, SENTINEL_PASSWORD, 3)


@pytest.mark.parametrize(("url", "db", "password"), [
    ("redis://127.0.0.1:6379/2", 2, None),
    ("redis://:pw-in-url@127.0.0.1/0", 0, "pw-in-url"),
    ("rediss://user:pw-in-url@redis.internal:6380?db=4", 4, "pw-in-url"),
    ("unix:///run/redis/redis.sock?db=5", 5, None),
    ("unix:///run/redis/redis.sock", 0, None),
])
def test_one_server_urls(url: str, db: int, password: str | None) -> None:
    target = parse(url)
    assert (target.sentinel, target.db, target.password) == (False, db, password)
    assert "pw-in-url" not in target.describe()


@pytest.mark.parametrize(("url", "says"), [
    ("redis+sentinel://h1:26379,h2:26379", "names the master"),
    ("redis+sentinel://h1:26379,h2:26379/", "names the master"),
    ("redis+sentinel:///mymaster", "lists the Sentinels"),
    (f"redis+sentinel://:{PASSWORD}@/mymaster", "lists the Sentinels"),
    ("redis+sentinel://h1,,h2/mymaster", "empty host"),
    ("redis+sentinel://h1:port/mymaster", "port 'port' of host 'h1' is not a number"),
    ("redis+sentinel://h1:0/mymaster", "port '0' of host 'h1'"),
    ("redis+sentinel://h1:70000/mymaster", "port '70000'"),
    ("redis+sentinel://h1/mymaster/zero", "database 'zero' is not a number"),
    ("redis+sentinel://h1/mymaster/0/extra", "ends with /MASTER or /MASTER/DB"),
    (f"redis+sentinel://h1/mymaster?password={PASSWORD}", "not 'password'"),
    ("http://127.0.0.1:6379", "starts with 'http://'"),
    ("127.0.0.1:6379", "has no scheme"),
    ("redis://", "needs a host"),
    (f"redis://:{PASSWORD}@127.0.0.1:63a9/0", "port '63a9'"),
    ("redis://127.0.0.1/db1", "database 'db1'"),
    ("unix://", "socket's path"),
])
def test_bad_urls_say_what_is_wrong_in_one_line_with_an_example(url: str, says: str) -> None:
    with pytest.raises(RedisUrlError) as caught:
        parse(url)
    message = str(caught.value)
    assert says in message and "\n" not in message
    assert "e.g. redis" in message or "e.g. unix" in message
    assert PASSWORD not in message


def test_a_bad_url_is_refused_at_start_up_by_every_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli.logs, "configure", lambda *args, **kwargs: None)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MULL_REDIS_URL", f"redis+sentinel://:{PASSWORD}@10.0.0.1:26379")
    monkeypatch.setenv("MULL_WEBHOOK_SECRET", "a-webhook-secret")
    for command in (["web"], ["worker"], ["status"], ["retry-deliveries", "--all"]):
        assert cli.main(command) == 2
        err = capsys.readouterr().err
        first = err.splitlines()[1].removeprefix("  - ") if command == ["worker"] else err.removeprefix("mull: ")
        assert first.startswith("MULL_REDIS_URL:") and "names the master" in first  # a worker lists the rest too
        assert err.count("\n") == 1 or command == ["worker"]
        assert PASSWORD not in err


def test_settings_hand_the_passwords_to_the_redactor() -> None:
    settings = load_settings({"MULL_REDIS_URL": f"redis+sentinel://:{PASSWORD}@h/m?sentinel_password="
                                                f"{SENTINEL_PASSWORD}"}, env_file=None)
    assert {PASSWORD, SENTINEL_PASSWORD} <= set(settings.secret_values())
    line = Redactor(settings.secret_values()).text(f"AUTH failed for {PASSWORD} / {SENTINEL_PASSWORD}")
    assert PASSWORD not in line and SENTINEL_PASSWORD not in line


def test_a_password_parameter_is_redacted_even_unconfigured() -> None:
    line = Redactor().text(f"connecting to redis+sentinel://:{PASSWORD}@h/m?sentinel_password={SENTINEL_PASSWORD}")
    assert PASSWORD not in line and SENTINEL_PASSWORD not in line


@pytest.mark.parametrize(("value", "accepted"), [("10", True), ("30", True), ("60", True), ("300", True),
                                                 ("3600", True), ("45", False), ("420", False), ("5", False)])
def test_the_redelivery_period_divides_an_hour(value: str, accepted: bool) -> None:
    if accepted:
        assert load_settings({"MULL_REDELIVER_INTERVAL": value}, env_file=None).redeliver_interval == int(value)
    else:
        with pytest.raises(ConfigError, match="MULL_REDELIVER_INTERVAL"):
            load_settings({"MULL_REDELIVER_INTERVAL": value}, env_file=None)


def test_retry_within_gives_up_after_its_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from redis.exceptions import ConnectionError as RedisConnectionError

    calls: list[float] = []

    async def refuse() -> None:
        calls.append(asyncio.get_running_loop().time())
        raise RedisConnectionError("refused")

    async def nothing(error: Exception) -> None:
        return None

    retry = redis_target.RetryWithin(0.5, (RedisConnectionError,))
    with pytest.raises(RedisConnectionError):
        asyncio.run(retry.call_with_retry(refuse, nothing))
    assert len(calls) >= 3 and 0.3 <= calls[-1] - calls[0] <= 0.5


@pytest.mark.parametrize("connected", [True, False], ids=["stale-connection", "new-connection"])
def test_a_command_waits_out_a_redis_restart_within_its_patience(tmp_path: Path, connected: bool) -> None:
    """A restart refuses new connections for a moment; a command sent then waits for Redis to be back, whether
    its client held a connection (now stale) or must open one (a refused connect is a bare OSError)."""
    import asyncio
    import threading
    import time

    from doubles.redis_process import RedisProcess

    server = RedisProcess(tmp_path / "redis").start()

    async def scenario() -> float:
        client = parse(server.url).client(Redis, keep_trying=15, socket_connect_timeout=1)
        if connected:
            await client.set("kept", "yes")
        else:
            server.client().set("kept", "yes")
        server.kill()
        threading.Timer(1.0, server.start).start()
        began = time.monotonic()
        try:
            assert await client.get("kept") == b"yes"  # append-only, fsync always: acknowledged, so kept
        finally:
            await client.aclose()
        return time.monotonic() - began

    try:
        assert 0.8 < asyncio.run(scenario()) < 15
    finally:
        time.sleep(0.1)
        server.kill()


def test_a_command_gives_up_when_redis_stays_down_past_its_patience(tmp_path: Path) -> None:
    import asyncio
    import time

    from doubles.redis_process import free_port
    from redis.exceptions import ConnectionError as RedisConnectionError

    async def scenario() -> float:
        client = parse(f"redis://127.0.0.1:{free_port()}").client(Redis, keep_trying=0.6, socket_connect_timeout=1)
        began = time.monotonic()
        try:
            with pytest.raises(RedisConnectionError):
                await client.get("anything")
        finally:
            await client.aclose()
        return time.monotonic() - began

    assert 0.2 < asyncio.run(scenario()) < 2  # it did wait (a refusal takes microseconds), then gave up


def test_a_write_on_a_connection_closed_under_uvloop_is_a_lost_connection_not_a_crash(tmp_path: Path) -> None:
    """uvloop raises RuntimeError for a write on a closed transport; redis-py let it through, and a Redis restart
    that closed a connection between its check and its use ended a worker's poll loop. It is a ConnectionError
    now: a plain command reconnects and goes on, a WATCHed transaction fails as a WatchError its caller retries."""
    import asyncio

    import uvloop
    from doubles.redis_process import RedisProcess
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import WatchError

    server = RedisProcess(tmp_path / "redis").start()

    async def scenario() -> None:
        client = parse(server.url).client(Redis, keep_trying=5)
        try:
            await client.set("k", "1")
            connection = await client.connection_pool.get_connection()
            connection._writer.transport.abort()
            await asyncio.sleep(0.01)
            with pytest.raises(RedisConnectionError, match="the connection had closed"):
                await connection.send_command("PING")
            await client.connection_pool.release(connection)
            async with client.pipeline(transaction=True) as pipe:
                await pipe.watch("k")
                pipe.connection._writer.transport.abort()
                await asyncio.sleep(0.01)
                pipe.multi()
                pipe.set("k", "2")
                with pytest.raises(WatchError):
                    await pipe.execute()
            assert await client.get("k") == b"1"
            assert await client.incr("k") == 2
        finally:
            await client.aclose()

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(scenario())
    finally:
        server.kill()
