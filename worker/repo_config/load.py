"""A repository's settings from GitHub: its ``.github/mull.yml`` over its owner's ``.github`` repo's file.

Both files are cached in Redis so a trigger rarely costs a request (the keys come from ``bot.keys``):

- ``config_blob``: what one file content parses to (its overrides, or its error), by git blob SHA.
  Content-addressed, so a file is parsed once however many repos share it; its version changes with the schema.
- ``config_pointer`` (under the repository's prefix) / ``owner_config_pointer``: which SHA (none: no file)
  and ETag the file had when last checked.
- ``config_fresh``: set for ``FRESH_SECONDS`` after a check. While it lives a load makes no request at all;
  after it, one conditional request (``If-None-Match``; a 304 does not count against GitHub's rate limit).
- ``config_generation``: bumped by ``invalidate``, which a push that touches the file triggers. A load that
  fetched before the push and stores after it records the old generation, so its pointer is not trusted.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass, replace
from typing import Any

from githubkit import GitHub
from githubkit.exception import RateLimitExceeded, RequestFailed
from redis.asyncio import Redis

from bot import keys
from worker.repo_config.errors import ConfigFileError, Problem
from worker.repo_config.parse import MAX_BYTES, build, parse_overrides
from worker.repo_config.schema import Defaults, RepoConfig

PATH = ".github/mull.yml"
ORG_REPO = ".github"
SCHEMA_VERSION = 1  # bump when a file's meaning changes: cached parses of the old schema are then ignored
FRESH_SECONDS = 600
POINTER_SECONDS = 24 * 3600
BLOB_SECONDS = 7 * 24 * 3600
MAX_LISTED_COMMITS = 2048  # a push webhook lists at most this many commits; a longer push may hide the file


@dataclass(frozen=True)
class _Scope:
    """One config file: where it lives and the Redis key of its pointer."""

    key: str
    owner: str
    repo: str
    optional: bool  # the org file: no access to it means no org defaults

    @property
    def source(self) -> str:
        return f"{self.owner}/{self.repo}:{PATH}"


@dataclass(frozen=True)
class _Fetched:
    sha: str | None
    etag: str | None = None
    url: str | None = None
    text: str | None = None
    result: dict[str, Any] | None = None  # decided without parsing (no file, not a file, too big): kept inline


async def load_config(gh: GitHub, redis: Redis, owner: str, repo: str, repo_id: int, defaults: Defaults, *,
                      org_gh: GitHub | None = None) -> RepoConfig:
    """The repository's settings: ``defaults``, then ``{owner}/.github``'s file, then the repo's own.

    Raises ConfigFileError when either file is bad. ``org_gh`` reads the org file when ``gh`` is scoped
    to the one repository (a token limited to ``repo_id`` cannot read a private ``.github`` repo).
    """
    org_scope = _Scope(keys.owner_config_pointer(owner), owner, ORG_REPO, optional=True)
    org = await _overrides(org_gh or gh, redis, org_scope)
    scope = _Scope(keys.config_pointer(repo_id), owner, repo, optional=False)
    own = await _overrides(gh, redis, scope)
    return build(defaults, org, own, source=scope.source)


async def invalidate(redis: Redis, repo_id: int) -> None:
    """Forget what is known about a repository's file: the next load fetches it."""
    await _invalidate(redis, keys.config_pointer(repo_id))


async def invalidate_owner(redis: Redis, owner: str) -> None:
    """Forget the org defaults of ``owner``: every one of its repositories sees the new file on next load."""
    await _invalidate(redis, keys.owner_config_pointer(owner))


async def invalidate_for_push(redis: Redis, payload: dict[str, Any]) -> bool:
    """The ``push`` handler's one call: invalidate what the push changed; True when it did."""
    if not touches_config(payload):
        return False
    repo = payload["repository"]
    await invalidate(redis, int(repo["id"]))
    if touches_org_defaults(payload):
        await invalidate_owner(redis, _owner_login(repo))
    return True


def touches_config(payload: dict[str, Any]) -> bool:
    """Whether a push to the default branch may have changed ``.github/mull.yml``.

    When the payload cannot tell (a force push, which may drop a change no listed commit shows, or a
    commit list at GitHub's limit), the answer is yes: a needless refetch is one request.
    """
    repo = payload.get("repository") or {}
    branch = repo.get("default_branch") or repo.get("master_branch")
    if not branch or payload.get("ref") != f"refs/heads/{branch}" or payload.get("deleted"):
        return False
    commits = payload.get("commits") or []
    if payload.get("forced") or payload.get("created") or len(commits) >= MAX_LISTED_COMMITS:
        return True
    return any(PATH in (commit.get(kind) or []) for commit in commits for kind in ("added", "modified", "removed"))


def touches_org_defaults(payload: dict[str, Any]) -> bool:
    """A push that changed the org defaults: the file in the owner's ``.github`` repository."""
    return (payload.get("repository") or {}).get("name") == ORG_REPO and touches_config(payload)


def _owner_login(repo: dict[str, Any]) -> str:
    owner = repo.get("owner") or {}
    return str(owner.get("login") or owner.get("name") or repo["full_name"].split("/", 1)[0])


async def _invalidate(redis: Redis, key: str) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incr(keys.config_generation(key))
        pipe.expire(keys.config_generation(key), POINTER_SECONDS * 2)
        pipe.delete(key, keys.config_fresh(key))
        await pipe.execute()


async def _overrides(gh: GitHub, redis: Redis, scope: _Scope) -> dict[str, Any]:
    """One file's layer, from the cache when it is fresh, else after one (usually conditional) request."""
    raw_pointer, fresh, raw_gen = await redis.mget(scope.key, keys.config_fresh(scope.key),
                                                  keys.config_generation(scope.key))
    gen = int(raw_gen or 0)
    pointer = json.loads(raw_pointer) if raw_pointer else None
    if pointer is not None and pointer.get("gen") != gen:
        pointer = None  # stored by a load that raced an invalidation
    cached = await _cached_result(redis, pointer) if pointer is not None else None
    if cached is not None and fresh is not None:
        return _unpack(cached, scope, pointer)
    etag = pointer.get("etag") if pointer is not None and cached is not None else None
    fetched = await _fetch(gh, scope, etag)
    if fetched is None:  # 304: unchanged since the pointer was stored
        assert pointer is not None and cached is not None
        result = cached
    else:
        result = await _result(redis, fetched, scope)
        pointer = {"gen": gen, "sha": fetched.sha, "etag": fetched.etag, "url": fetched.url}
        if fetched.result is not None:
            pointer["result"] = fetched.result
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set(scope.key, json.dumps(pointer), ex=POINTER_SECONDS)
        pipe.set(keys.config_fresh(scope.key), 1, ex=FRESH_SECONDS)
        await pipe.execute()
    return _unpack(result, scope, pointer)


async def _cached_result(redis: Redis, pointer: dict[str, Any]) -> dict[str, Any] | None:
    if "result" in pointer:
        return dict(pointer["result"])
    raw = await redis.get(keys.config_blob(SCHEMA_VERSION, pointer["sha"]))
    return json.loads(raw) if raw else None


async def _result(redis: Redis, fetched: _Fetched, scope: _Scope) -> dict[str, Any]:
    """The parse of fetched content: from the blob cache when this SHA was parsed before, else parsed now."""
    if fetched.result is not None:
        return fetched.result
    assert fetched.sha is not None
    if cached := await redis.get(keys.config_blob(SCHEMA_VERSION, fetched.sha)):
        return dict(json.loads(cached))
    try:
        # A 64 kB file takes PyYAML a fraction of a second: off the event loop the worker shares with other jobs.
        result: dict[str, Any] = {"overrides": await asyncio.to_thread(parse_overrides, fetched.text or "",
                                                                      scope.source)}
    except ConfigFileError as exc:
        result = {"error": exc.to_json()}
    await redis.set(keys.config_blob(SCHEMA_VERSION, fetched.sha), json.dumps(result), ex=BLOB_SECONDS)
    return result


def _unpack(result: dict[str, Any], scope: _Scope, pointer: dict[str, Any] | None) -> dict[str, Any]:
    if "error" in result:
        raise ConfigFileError.from_json(scope.source, result["error"], url=(pointer or {}).get("url"))
    return dict(result["overrides"])


async def _fetch(gh: GitHub, scope: _Scope, etag: str | None) -> _Fetched | None:
    """The file from the default branch, or None when ``etag`` still matches (304)."""
    try:
        response = await gh.rest.repos.async_get_content(
            scope.owner, scope.repo, PATH, headers={"If-None-Match": etag} if etag else None)
    except RequestFailed as exc:
        status = exc.response.status_code
        if status == 404 or (scope.optional and status == 403 and not isinstance(exc, RateLimitExceeded)):
            return _Fetched(sha=None, result={"overrides": {}})
        raise
    if response.status_code == 304:
        return None
    data: Any = response.json()
    if not isinstance(data, dict) or data.get("type") != "file":
        kind = "a directory" if isinstance(data, list) else f"a {data.get('type', 'non-file')}"
        sha = None if isinstance(data, list) else data.get("sha")
        return _Fetched(sha=sha, result=_error(scope, f"is {kind}, not a file"))
    fetched = _Fetched(sha=str(data["sha"]), etag=response.headers.get("etag"), url=data.get("html_url"))
    if int(data.get("size") or 0) > MAX_BYTES:
        return replace(fetched, result=_error(scope, f"is {data['size']} bytes; the limit is {MAX_BYTES // 1024} kB"))
    try:
        text = base64.b64decode(data.get("content") or "").decode("utf-8-sig")
    except UnicodeDecodeError:
        return replace(fetched, result=_error(scope, "is not UTF-8 text"))
    return replace(fetched, text=text)


def _error(scope: _Scope, message: str) -> dict[str, Any]:
    return {"error": ConfigFileError(scope.source, [Problem(message)]).to_json()}
