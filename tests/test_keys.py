"""Redis key layout: every key is built in bot/keys.py, a repository's keys live under its own prefix, removing
a repository deletes exactly its keys by one SCAN of that prefix, and keys of the older layout move once."""

from __future__ import annotations

import ast
import asyncio
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from bot import keys
from worker.backlog.state import Item, ItemState
from worker.backlog.store import Backlog
from worker.ops import key_layout
from worker.webhooks import installations

ROOT = Path(__file__).parent.parent
GITHUB_LABEL_MODULE = Path("worker/views/labels.py")


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict]] = []

    def info(self, event: str, **kw: object) -> None:
        self.lines.append((event, kw))

    warning = info


def run(redis_url: str, body: Callable[[aioredis.Redis], Any]) -> None:
    async def main() -> None:
        redis = aioredis.Redis.from_url(redis_url)
        try:
            await body(redis)
        finally:
            await redis.aclose()

    asyncio.run(main())


# --- the layout ------------------------------------------------------------------------------------------------


def _sample(name: str, value: inspect.Parameter) -> object:
    return {"int": 7, "str": "Some-Login"}[str(value.annotation)] if name != "repo_id" else None


def repo_key_functions() -> dict[str, Callable[..., str]]:
    """Every function of bot/keys.py whose first argument is ``repo_id``: the per-repository keys."""
    return {name: fn for name, fn in vars(keys).items()
            if inspect.isfunction(fn) and fn.__module__ == keys.__name__
            and next(iter(inspect.signature(fn).parameters), None) == "repo_id"}


def repo_keys_of(repo_id: int) -> list[str]:
    """One key of every per-repository kind, for ``repo_id``."""
    found = []
    for name, fn in repo_key_functions().items():
        params = list(inspect.signature(fn).parameters.items())[1:]
        key = fn(repo_id, *(_sample(n, p) for n, p in params))
        if name != "repo_keys":  # a SCAN pattern, not a key
            found.append(key)
    return found


def test_every_key_of_a_repository_is_under_its_prefix() -> None:
    assert len(repo_key_functions()) >= 15
    for key in repo_keys_of(11):
        assert key.startswith("mull:repo:11:"), key
        assert not key.startswith("mull:repo:1:") and not key.startswith("mull:repo:111:")
    assert keys.repo_keys(11) == "mull:repo:11:*"
    assert keys.snooze(11, 4).startswith(keys.snoozed_items(11))
    assert keys.config_fresh(keys.config_pointer(11)).startswith(keys.repo_prefix(11))
    assert keys.config_generation(keys.config_pointer(11)).startswith(keys.repo_prefix(11))


def test_keys_of_distinct_things_are_distinct() -> None:
    built = repo_keys_of(11) + repo_keys_of(12) + [keys.seen("g"), keys.once("cmd:g"), keys.run_slots(11),
                                                   keys.reviewer_load(11, "Some-Login"), keys.WORKERS]
    assert len(set(built)) == len(built)


def _key_literals(path: Path, root: Path = ROOT) -> list[str]:
    """String literals in ``path`` that read as a Mull Redis key (``mull:`` then a name), and ``keys.PREFIX``
    used to build one. GitHub label names (``mull:queued``) look alike: they are the constants of
    worker/views/labels.py and module constants named ``…LABEL``, and are not keys."""
    tree = ast.parse(path.read_text())
    labels: set[int] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if path.relative_to(root) == GITHUB_LABEL_MODULE or any(n.endswith("LABEL") for n in names):
                labels.add(id(node.value))
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("mull:")
                and node.value[5:6].strip() and id(node) not in labels):
            found.append(f"{path.relative_to(root)}:{node.lineno}: {node.value!r}")
        if isinstance(node, ast.Attribute) and node.attr == "PREFIX" and \
                isinstance(node.value, ast.Name) and node.value.id == "keys":
            found.append(f"{path.relative_to(root)}:{node.lineno}: keys.PREFIX")
        if isinstance(node, ast.ImportFrom) and node.module == "bot.keys":
            found.append(f"{path.relative_to(root)}:{node.lineno}: from bot.keys import …")
    return found


def test_no_key_is_built_outside_bot_keys() -> None:
    outside = [p for root in ("bot", "worker") for p in sorted((ROOT / root).rglob("*.py"))
               if p != ROOT / "bot" / "keys.py"]
    assert len(outside) > 100
    found = [hit for path in outside for hit in _key_literals(path)]
    assert found == [], "build these keys in bot/keys.py:\n" + "\n".join(found)


def test_the_literal_check_catches_a_key(tmp_path: Path) -> None:
    """The guard above can fail: a key spelled in a module, or built from keys.PREFIX, is found."""
    module = tmp_path / "worker" / "probe.py"
    module.parent.mkdir()
    module.write_text('from bot import keys\n\nLABEL = "mull:snoozed"\nA = f"mull:thing:{1}"\n'
                      'B = keys.PREFIX + "x"\nC = "mull: not a key"\n')
    assert [hit.split(": ", 1)[1] for hit in _key_literals(module, tmp_path)] == ["'mull:thing:'", "keys.PREFIX"]
    labels = tmp_path / GITHUB_LABEL_MODULE
    labels.parent.mkdir(parents=True, exist_ok=True)
    labels.write_text('QUEUED = "mull:queued"\n')
    assert _key_literals(labels, tmp_path) == []


# --- removing a repository -------------------------------------------------------------------------------------


def test_a_removed_repository_leaves_no_key_and_others_keep_theirs(redis_url: str) -> None:
    async def body(redis: aioredis.Redis) -> None:
        mine, theirs = repo_keys_of(11), repo_keys_of(12)
        # Global keys, some with 11 in their name (installation 11, a guid): the old ``mull:*:11:*`` match hit them.
        shared = [keys.seen("11"), keys.once("cmd:11"), keys.run_slots(11), keys.installation_repos(11),
                  keys.worker_heartbeat("11"), keys.STATS, keys.BACKLOG_EPOCH, keys.owner_config_pointer("acme"),
                  keys.config_blob(1, "abc")]
        for key in mine + theirs + shared:
            await redis.set(key, "x")
        # Its pull request awaits a reviewer who also reviews repository 12's.
        for repo_id, name in ((11, "acme/a"), (12, "acme/b")):
            backlog = Backlog(redis, repo_id)
            await backlog.put(Item(issue=1, state=ItemState.AWAITING, pr=5, reviewers=("Rev",)))
            await redis.sadd(keys.reviewer_load(9, "Rev"), f"{repo_id}:1")
            await redis.sadd(keys.AWAITING_REVIEW, f"{name}#5")
        await redis.sadd(keys.installation_repos(9), "11:acme/a", "12:acme/b")

        patterns: list[str | None] = []
        real_scan = redis.scan_iter

        def spy(match: str | None = None, **kw: Any) -> Any:
            patterns.append(match)
            return real_scan(match=match, **kw)

        redis.scan_iter = spy  # type: ignore[method-assign]
        await installations.forget_repos(redis, 9, [{"id": 11, "full_name": "acme/a"}], Log())

        assert patterns == ["mull:repo:11:*"], "one SCAN, of the repository's prefix only"
        assert [k async for k in real_scan(match="mull:repo:11:*")] == []
        assert await redis.exists(*theirs) == len(theirs)
        assert await redis.exists(*shared) == len(shared)
        assert await redis.smembers(keys.reviewer_load(9, "rev")) == {b"12:1"}
        assert await redis.smembers(keys.AWAITING_REVIEW) == {b"acme/b#5"}
        assert await redis.smembers(keys.installation_repos(9)) == {b"12:acme/b"}
        assert [i.issue for i in await Backlog(redis, 12).items()] == [1]

    run(redis_url, body)


def test_removing_a_repository_with_many_keys_deletes_them_all(redis_url: str) -> None:
    async def body(redis: aioredis.Redis) -> None:
        async with redis.pipeline(transaction=False) as pipe:
            for issue in range(1300):
                pipe.hset(keys.issue_state(11, issue), "status_comment", issue)
            await pipe.execute()
        assert await installations.forget_repo_keys(redis, 11) == 1300
        assert await redis.dbsize() == 0

    run(redis_url, body)


# --- the older layout ------------------------------------------------------------------------------------------

OLD_TO_NEW = {
    "mull:issue:11:3": keys.issue_state(11, 3),
    "mull:issue:11:3:result:labeled": keys.solve_result(11, 3, "labeled"),
    "mull:pr:11:8": keys.pull_state(11, 8),
    "mull:backlog:11:items": keys.backlog(11, "items"),
    "mull:backlog:11:waiting": keys.backlog(11, "waiting"),
    "mull:snooze:11:3": keys.snooze(11, 3),
    "mull:snooze-until:11:4": keys.snooze_waiting_on(11, 4),
    "mull:config:repo:11": keys.config_pointer(11),
    "mull:config:repo:11:fresh": keys.config_fresh(keys.config_pointer(11)),
    "mull:config:repo:11:gen": keys.config_generation(keys.config_pointer(11)),
    "mull:once:needs-you:11:3:failed:1.5:boom": keys.repo_once(11, "needs-you:3:failed:1.5:boom"),
    "mull:digest:11:rev:2026-12-01T09": keys.digest_sent(11, "rev", "2026-12-01T09"),
}
KEEP_NAME = ["mull:backlog:repos", "mull:backlog:epoch", "mull:stats", "mull:seen:g-11", "mull:once:cmd:g-11",
             "mull:config:owner:acme", "mull:config:blob:v1:abc", "mull:reviewer:11:rev", "mull:slots:11",
             "mull:installation:11:repos", "mull:worker:11:alive", "mull:lock:issue:11:3", "mull:lock:mirror:11",
             "mull:stop:solve:11:3", "mull:repo:11:issue:99", "other-app:issue:11:3"]


def test_moved_key_names_where_each_old_key_lives_now() -> None:
    for old, new in OLD_TO_NEW.items():
        assert keys.moved_key(old) == new, old
    for name in KEEP_NAME + ["mull:", "mull:issue", "mull:issue:x:3", "mull:issue:11:", "mull:config:repo:x",
                             "mull:config:repo:11:other", "mull:once:needs-you:x:1"]:
        assert keys.moved_key(name) is None, name


def test_the_old_layout_moves_once_with_values_and_ttls(redis_url: str) -> None:
    async def body(redis: aioredis.Redis) -> None:
        for old in OLD_TO_NEW:
            await redis.hset(old, "was", old)
        await redis.expire("mull:config:repo:11:fresh", 500)
        for name in KEEP_NAME:
            await redis.set(name, name)
        await redis.set(b"mull:\xff\xfe", "not utf-8")  # nothing Mull wrote; must not stop the move
        log = Log()

        assert await key_layout.upgrade(redis, log) == len(OLD_TO_NEW)
        for old, new in OLD_TO_NEW.items():
            assert not await redis.exists(old)
            assert await redis.hget(new, "was") == old.encode()
        assert 0 < await redis.ttl(keys.config_fresh(keys.config_pointer(11))) <= 500
        assert await redis.ttl(keys.issue_state(11, 3)) == -1
        for name in KEEP_NAME:
            assert await redis.get(name) == name.encode(), name
        assert await redis.get(keys.KEY_LAYOUT) == str(keys.LAYOUT).encode()
        assert log.lines == [("moved Redis keys to the per-repository layout",
                              {"keys": len(OLD_TO_NEW), "layout": keys.LAYOUT})]

        await redis.hset("mull:issue:11:3", "was", "written by a worker of the old layout after the move")
        assert await key_layout.upgrade(redis, log) == 0  # once: the layout is recorded
        assert await redis.exists("mull:issue:11:3")

    run(redis_url, body)


def test_a_key_already_under_its_new_name_wins(redis_url: str) -> None:
    async def body(redis: aioredis.Redis) -> None:
        await redis.hset("mull:issue:11:3", "status_comment", "1")
        await redis.hset(keys.issue_state(11, 3), "status_comment", "2")
        assert await key_layout.upgrade(redis, Log()) == 0
        assert not await redis.exists("mull:issue:11:3")
        assert await redis.hget(keys.issue_state(11, 3), "status_comment") == b"2"

    run(redis_url, body)


def test_workers_starting_together_move_each_key_once(redis_url: str) -> None:
    async def body(redis: aioredis.Redis) -> None:
        for issue in range(300):
            await redis.hset(f"mull:issue:11:{issue}", "status_comment", issue)
        clients = [aioredis.Redis.from_url(redis_url) for _ in range(4)]
        try:
            moved = await asyncio.gather(*(key_layout.upgrade(c, Log()) for c in clients))
        finally:
            for c in clients:
                await c.aclose()
        assert sum(moved) == 300 and sorted(moved)[:3] == [0, 0, 0]
        assert [k async for k in redis.scan_iter(match="mull:issue:*")] == []
        assert await redis.hget(keys.issue_state(11, 299), "status_comment") == b"299"

    run(redis_url, body)


def test_an_unreadable_layout_mark_moves_again_without_crashing(redis_url: str) -> None:
    async def body(redis: aioredis.Redis) -> None:
        await redis.set(keys.KEY_LAYOUT, "garbage")
        await redis.hset("mull:pr:11:8", "fix_rounds", 1)
        assert await key_layout.upgrade(redis, Log()) == 1
        assert await redis.hget(keys.pull_state(11, 8), "fix_rounds") == b"1"
        assert await redis.get(keys.KEY_LAYOUT) == str(keys.LAYOUT).encode()

    run(redis_url, body)
