"""Session pages kept in an S3-compatible bucket (``MULL_SESSION_BUCKET``) instead of Redis: every request signed
as AWS's own signer signs it, the page read back through the web app, expired sessions refused and deleted, and
bad settings, a wrong key or a bucket that is down handled in one line without the secret."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest
import redis
import redis.asyncio as aioredis
from doubles.fixtures import REPO
from doubles.github import GitHubDouble
from doubles.recording_log import RecordingLog
from doubles.s3_bucket import KEY_ID, REGION, SECRET, BucketDouble
from starlette.testclient import TestClient
from test_session_site import MODEL_KEY, a_session, sign_in

from bot import keys, session_store
from bot.github_login import GitHubOAuth
from bot.receiver import create_app
from bot.redaction import Redactor
from bot.session_bucket import Bucket, BucketClient, BucketError
from bot.session_site import SessionSiteConfig
from bot.settings import ConfigError, load_settings

COOKIES = "webhook-secret-for-cookies"


@pytest.fixture
def bucket() -> Iterator[BucketDouble]:
    with BucketDouble().serving() as double:
        yield double


def settings_of(double: BucketDouble, **extra: str):  # type: ignore[no-untyped-def]
    return load_settings({"MULL_SESSION_BUCKET": double.url + "/mull", "MULL_SESSION_BUCKET_REGION": REGION,
                          "MULL_SESSION_BUCKET_KEY_ID": KEY_ID, "MULL_SESSION_BUCKET_SECRET": SECRET, **extra},
                         env_file=None)


def in_bucket(redis_url: str, config: Bucket, coroutine) -> object:  # type: ignore[no-untyped-def]
    async def go() -> object:
        client = aioredis.Redis.from_url(redis_url)
        try:
            async with httpx.AsyncClient() as http:
                return await coroutine(client, BucketClient(config, http))
        finally:
            await client.aclose()
    return asyncio.run(go())


def test_a_session_lives_in_the_bucket_and_only_its_expiry_in_redis(bucket, redis_url) -> None:
    config = settings_of(bucket).bucket()
    assert config is not None
    session = a_session(1, "implement-1-mull-issue-3-bucket0001")

    async def save_and_load(client, store):  # type: ignore[no-untyped-def]
        await session_store.save(client, session, Redactor([MODEL_KEY]), 30, store)
        return await session_store.load(client, session.run_id, store)

    loaded = in_bucket(redis_url, config, save_and_load)
    assert loaded is not None and loaded.run_id == session.run_id and len(loaded.steps) == 3
    assert list(bucket.objects) == [f"mull/sessions/{session.run_id}.json.z"]
    assert MODEL_KEY.encode() not in next(iter(bucket.objects.values()))  # compressed, but redacted first
    conn = redis.Redis.from_url(redis_url)
    assert not conn.exists(keys.session(session.run_id))  # the session itself is not in Redis
    assert 29 * 86400 < conn.zscore(keys.SESSION_EXPIRY, session.run_id) - time.time() <= 30 * 86400
    conn.close()


def test_an_expired_session_is_refused_at_once_and_deleted_by_the_sweep(bucket, redis_url) -> None:
    config = settings_of(bucket).bucket()
    assert config is not None
    old, new = a_session(1, "implement-1-old-0001"), a_session(1, "implement-1-new-0002")

    async def scenario(client, store):  # type: ignore[no-untyped-def]
        await session_store.save(client, old, Redactor(), 30, store)
        await session_store.save(client, new, Redactor(), 30, store)
        await client.zadd(keys.SESSION_EXPIRY, {old.run_id: time.time() - 1})  # its retention is over
        shown = await session_store.load(client, old.run_id, store)
        gone = await session_store.expire(client, store, time.time())
        return shown, gone, await session_store.load(client, new.run_id, store)

    shown, gone, kept = in_bucket(redis_url, config, scenario)  # type: ignore[misc]
    assert shown is None and gone == 1 and kept is not None
    assert list(bucket.objects) == [f"mull/sessions/{new.run_id}.json.z"]
    assert ("DELETE", f"mull/sessions/{old.run_id}.json.z", 204) in bucket.requests


def test_the_page_reads_the_bucket_through_the_web_app(bucket, github_double: GitHubDouble, redis_url) -> None:
    github_double.set_permission(REPO, "maria", "read")
    settings = settings_of(bucket)
    session = a_session(github_double.state.repo(REPO).id, "implement-9-mull-issue-3-bucketpage")
    in_bucket(redis_url, settings.bucket(), lambda client, store: session_store.save(  # type: ignore[arg-type]
        client, session, Redactor([MODEL_KEY]), 30, store))
    oauth = GitHubOAuth(github_double.url, github_double.oauth.client_id, github_double.oauth.client_secret)
    config = SessionSiteConfig(cookie_secret=COOKIES, oauth=oauth, redactor=Redactor([MODEL_KEY, SECRET]),
                               bucket=settings.bucket())
    with TestClient(create_app(COOKIES, redis_url, app_slug="mull-test", sessions=config)) as client:
        path = f"/runs/{session.run_id}"
        assert sign_in(client, github_double, "maria", path).status_code == 302
        page = client.get(path)
        assert page.status_code == 200 and "Model turn 1" in page.text and MODEL_KEY not in page.text
        bucket.objects.clear()  # gone from the bucket: the same 404 as any unknown run
        assert client.get(path).status_code == 404
    assert all(status in (200, 404) for _, _, status in bucket.requests)  # every request was signed right


def test_a_wrong_key_or_a_bucket_that_is_down_costs_the_page_and_never_the_run(bucket, redis_url) -> None:
    from worker.sessions import record

    session = a_session(1, "implement-1-wrongkey-0001")
    for settings in (settings_of(bucket, MULL_SESSION_BUCKET_SECRET="not-the-secret-at-all"),
                     settings_of(bucket, MULL_SESSION_BUCKET="http://127.0.0.1:9/sessions")):
        log = RecordingLog()

        async def keep(settings=settings, log=log):  # type: ignore[no-untyped-def]
            client = aioredis.Redis.from_url(redis_url)
            async with httpx.AsyncClient() as http:
                svc = type("Svc", (), {"redis": client, "http": http, "settings": settings,
                                       "redactor": Redactor(settings.secret_values())})()
                try:
                    return await record.keep(svc, session, log)
                finally:
                    await client.aclose()

        assert asyncio.run(keep()) is None  # no page, and the run goes on
        [(event, fields)] = log.warnings()
        assert event.startswith("session not stored") and "session bucket" in fields["error"]
        assert "not-the-secret-at-all" not in str(log.lines) and SECRET not in str(log.lines)
    assert ("PUT", f"mull/sessions/{session.run_id}.json.z", 403) in bucket.requests


@pytest.mark.parametrize(("environ", "says"), [
    ({"MULL_SESSION_BUCKET": "s3.amazonaws.com/bucket"}, "http(s) URL of a bucket"),
    ({"MULL_SESSION_BUCKET": "https://s3.amazonaws.com/"}, "names no bucket"),
    ({"MULL_SESSION_BUCKET": "https://key:pw@s3.amazonaws.com/b"}, "must not hold"),
])
def test_a_bad_bucket_url_is_refused_at_start_naming_the_variable(environ: dict, says: str) -> None:
    from bot.settings import read_settings

    _settings, invalid = read_settings(environ, env_file=None)
    assert any("MULL_SESSION_BUCKET" in line and says in line for line in invalid), invalid


def test_a_bucket_without_its_key_names_both_variables_and_the_way_back_to_redis() -> None:
    settings = load_settings({"MULL_SESSION_BUCKET": "https://s3.eu-west-1.amazonaws.com/b"}, env_file=None)
    with pytest.raises(ConfigError) as refused:
        settings.bucket()
    text = str(refused.value)
    assert "MULL_SESSION_BUCKET_KEY_ID is not set" in text and "MULL_SESSION_BUCKET_SECRET is not set" in text
    assert "unset MULL_SESSION_BUCKET to keep sessions in Redis" in text
    assert len(settings.unmet()) == 2
    assert load_settings({}, env_file=None).bucket() is None


def test_the_bucket_secret_is_redacted_everywhere() -> None:
    settings = load_settings({"MULL_SESSION_BUCKET": "https://s3.eu-west-1.amazonaws.com/b",
                              "MULL_SESSION_BUCKET_KEY_ID": KEY_ID, "MULL_SESSION_BUCKET_SECRET": SECRET},
                             env_file=None)
    assert SECRET in settings.secret_values()
    assert SECRET not in repr(settings.bucket())


def test_bucket_errors_name_the_bucket_and_the_fix(bucket) -> None:
    async def go() -> str:
        async with httpx.AsyncClient() as http:
            store = BucketClient(Bucket(bucket.url.replace("/sessions", "/other"), REGION, KEY_ID, SECRET), http)
            with pytest.raises(BucketError) as failed:
                await store.put("x", b"1")
            return str(failed.value)
    message = asyncio.run(go())
    assert "/other answered PUT with HTTP 404 (NoSuchBucket)" in message and "MULL_SESSION_BUCKET" in message


def test_the_double_checks_a_signature_at_the_time_it_was_made(bucket) -> None:
    """A request signed a few seconds before it arrives (a slow machine, a second ticking over) is checked at its
    own x-amz-date, as S3 does within its allowed skew; a changed byte is still refused."""
    from datetime import UTC, datetime, timedelta

    from bot.session_bucket import sign

    config = Bucket(bucket.url, REGION, KEY_ID, SECRET)
    earlier = datetime.now(UTC) - timedelta(seconds=3)
    with httpx.Client() as http:
        signed = sign(http.build_request("PUT", config.object_url("late"), content=b"body"), config, now=earlier)
        assert http.send(signed).status_code == 200
        forged = sign(http.build_request("PUT", config.object_url("late"), content=b"body"), config, now=earlier)
        forged.headers["x-amz-content-sha256"] = "0" * 64
        assert http.send(forged).status_code == 403
    assert bucket.objects == {"late": b"body"}


def test_the_hourly_job_deletes_what_expired_and_does_nothing_without_a_bucket(bucket, redis_url) -> None:
    from doubles.services import job_ctx, make_services

    from worker.sessions.expiry import expire_sessions

    settings = settings_of(bucket)
    runs = [a_session(1, f"implement-1-hourly-{n:04d}") for n in range(3)]

    async def scenario() -> tuple[int, int]:
        client = aioredis.Redis.from_url(redis_url)
        try:
            async with httpx.AsyncClient() as http:
                store = BucketClient(settings.bucket(), http)  # type: ignore[arg-type]
                for session in runs:
                    await session_store.save(client, session, Redactor(), 30, store)
                await client.zadd(keys.SESSION_EXPIRY, {runs[0].run_id: time.time() - 60,
                                                        runs[1].run_id: time.time() - 1})
                without = await expire_sessions(job_ctx(make_services(client, http=http)))
                with_bucket = await expire_sessions(job_ctx(make_services(client, http=http, settings=settings,
                                                                          log=RecordingLog())))
                return without, with_bucket
        finally:
            await client.aclose()

    assert asyncio.run(scenario()) == (0, 2)
    assert list(bucket.objects) == [f"mull/sessions/{runs[2].run_id}.json.z"]
    conn = redis.Redis.from_url(redis_url)
    assert [m.decode() for m in conn.zrange(keys.SESSION_EXPIRY, 0, -1)] == [runs[2].run_id]
    conn.close()
