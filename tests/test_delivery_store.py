"""The receiver's store on a real Redis: arq's job format byte for byte, dedupe, and no staged payload left over."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot import keys
from bot.delivery_store import ARQ_JOB_PREFIX, JOB_EXPIRES_MS, DeliveryStore, JobEncoder
from bot.job_codec import deserialize, serialize
from bot.jobs import HANDLE_DELIVERY, QUEUE, Delivery, delivery_job_id


@pytest.mark.parametrize("size", [0, 1, 2, 3, 16, 200, 250, 300, 65_000, 65_536, 70_000, 300_000])
def test_the_encoder_writes_what_the_codec_writes(size: int) -> None:
    encoder = JobEncoder()
    for enqueued_ms in (0, 5, 1_700_000_000_000):
        delivery = Delivery(str(uuid.uuid4()), "issues", bytes(range(256)) * (size // 256) + b"x" * (size % 256),
                            1_700_000_000_123)
        encoded = encoder.encode(delivery, enqueued_ms)
        assert encoded == serialize({"t": None, "f": HANDLE_DELIVERY, "a": (delivery,), "k": {}, "et": enqueued_ms})
        assert deserialize(encoded)["a"] == (delivery,)


def staged_keys(conn: redis.Redis) -> list[bytes]:
    return list(conn.scan_iter(match=keys.PREFIX + "staged:*"))


def put_all(url: str, deliveries: list[Delivery]) -> list[bool]:
    async def run() -> list[bool]:
        client = Redis.from_url(url)
        try:
            store = DeliveryStore(client)
            return list(await asyncio.gather(*(store.put(d) for d in deliveries)))
        finally:
            await client.aclose()

    return asyncio.run(run())


def test_new_deliveries_become_arq_jobs_and_repeats_leave_nothing_behind(redis_url: str) -> None:
    conn = redis.Redis.from_url(redis_url)
    first = [Delivery(str(uuid.uuid4()), "issues", b'{"n": %d}' % n, 1) for n in range(20)]
    # One batch holding each delivery twice, then the same ids again in a later batch.
    assert put_all(redis_url, first + first) == [True] * 20 + [False] * 20
    assert put_all(redis_url, first[:5]) == [False] * 5
    assert conn.zcard(QUEUE) == 20
    for delivery in first:
        job_key = ARQ_JOB_PREFIX + delivery_job_id(delivery.guid)
        assert deserialize(conn.get(job_key))["a"] == (delivery,)
        assert JOB_EXPIRES_MS - 60_000 < conn.pttl(job_key) <= JOB_EXPIRES_MS
        assert conn.exists(keys.seen(delivery.guid))
    assert staged_keys(conn) == []
    conn.close()


def test_a_stored_delivery_signals_new_work_and_a_repeat_does_not(redis_url: str) -> None:
    """The batch's script pushes a token for idle workers (no second round trip); the list stays short."""
    conn = redis.Redis.from_url(redis_url)
    one = Delivery(str(uuid.uuid4()), "issues", b"{}", 1)
    assert put_all(redis_url, [one]) == [True]
    assert conn.lrange(keys.NEW_WORK, 0, -1) == [b"1"]
    conn.delete(keys.NEW_WORK)
    assert put_all(redis_url, [one]) == [False]
    assert conn.llen(keys.NEW_WORK) == 0
    for n in range(keys.NEW_WORK_MAX * 2):
        put_all(redis_url, [Delivery(str(uuid.uuid4()), "issues", b"{}", n)])
    assert conn.llen(keys.NEW_WORK) == keys.NEW_WORK_MAX
    conn.close()


def test_a_delivery_whose_job_exists_is_not_queued_again(redis_url: str) -> None:
    conn = redis.Redis.from_url(redis_url)
    delivery = Delivery(str(uuid.uuid4()), "issues", b"{}", 1)
    conn.set(ARQ_JOB_PREFIX + delivery_job_id(delivery.guid), b"running")
    assert put_all(redis_url, [delivery]) == [False]
    assert conn.get(ARQ_JOB_PREFIX + delivery_job_id(delivery.guid)) == b"running"
    assert conn.zcard(QUEUE) == 0 and staged_keys(conn) == []
    conn.close()


def test_a_payload_redis_refused_is_an_error_and_the_delivery_can_come_again(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = redis.Redis.from_url(redis_url)
    delivery = Delivery(str(uuid.uuid4()), "issues", b"{}", 1)
    monkeypatch.setattr(keys, "STAGED_TTL_MS", -1)  # Redis refuses the staging SET: "invalid expire time"
    with pytest.raises(RedisError):
        put_all(redis_url, [delivery])
    assert not conn.exists(keys.seen(delivery.guid)) and conn.zcard(QUEUE) == 0
    monkeypatch.undo()
    assert put_all(redis_url, [delivery]) == [True]
    assert conn.zcard(QUEUE) == 1 and staged_keys(conn) == []
    conn.close()


def test_one_client_rides_out_a_flushed_script_a_killed_connection_and_an_error_reply(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch is written as raw RESP on the client's own connection: a server that forgot the script gets
    it again, a connection killed under the store is replaced by the client's retry, and after an error reply
    the connection is still in step for the next batch."""
    from bot.redis_target import parse

    conn = redis.Redis.from_url(redis_url)

    async def run() -> list[list[bool]]:
        name = f"delivery-store-test-{uuid.uuid4().hex[:8]}"  # to kill this client's connections, no one else's
        client = parse(redis_url).client(Redis, keep_trying=5, client_name=name)
        store = DeliveryStore(client)
        made = [Delivery(str(uuid.uuid4()), "issues", b'{"n": %d}' % n, 1) for n in range(6)]
        try:
            outcomes = [list(await asyncio.gather(*(store.put(d) for d in made[:2])))]
            conn.script_flush()
            outcomes.append([await store.put(made[2])])
            mine = [held["id"] for held in conn.client_list() if held.get("name") == name]
            assert mine  # only this client's connections: other tests of the run share this server
            for client_id in mine:
                conn.client_kill_filter(_id=client_id)
            outcomes.append([await store.put(made[3])])
            monkeypatch.setattr(keys, "STAGED_TTL_MS", -1)  # a store on the same connections, whose SETs Redis refuses
            with pytest.raises(RedisError):
                await DeliveryStore(client).put(made[4])
            monkeypatch.undo()
            outcomes.append([await store.put(made[4]), await store.put(made[5]), await store.put(made[0])])
            return outcomes
        finally:
            await client.aclose()

    assert asyncio.run(run()) == [[True, True], [True], [True], [True, True, False]]
    assert conn.zcard(QUEUE) == 6 and staged_keys(conn) == []
    conn.close()
