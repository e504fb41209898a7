"""The ``mull`` command: serve | web | worker | replay | status | retry-deliveries | try.

It lives in ``worker/`` because it composes both halves (``worker/`` may import ``bot/``, not the reverse).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from bot import logs
from bot.embedded_redis import EmbeddedRedis, EmbeddedRedisError
from bot.settings import ConfigError, MullSettings, read_settings
from worker import startup_check
from worker.agent.sandbox import SandboxUnavailable
from worker.replay import ReplayError


class UsageError(Exception):
    pass


def _keep_running_finally_blocks() -> None:
    """uvicorn re-raises the SIGTERM/SIGINT it caught once it has shut down gracefully; with the default
    handler that kills the process before Mull stops its worker and embedded Redis. Absorb the re-raise."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)


def run_async(coro) -> object:  # type: ignore[no-untyped-def]
    """asyncio.run on uvloop when installed (it is, with uvicorn[standard]): the receiver's hot path needs it."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


@contextlib.contextmanager
def redis_for(settings: MullSettings) -> Iterator[str]:
    """MULL_REDIS_URL, or the embedded server under MULL_DATA_DIR for the life of the command."""
    if settings.redis_url:
        yield settings.redis_url
        return
    embedded = EmbeddedRedis(settings.data_dir / "redis")
    url = embedded.start()
    logs.get("mull").info("embedded redis started", socket=str(embedded.socket))
    try:
        yield url
    finally:
        embedded.stop()


def _web_app(settings: MullSettings, redis_url: str):  # type: ignore[no-untyped-def]
    from bot.receiver import create_app

    return create_app(settings.require_webhook_secret(), redis_url, app_slug=settings.app_slug)


def _serve_setup(settings: MullSettings, without: str) -> int:
    """No GitHub App yet: serve only the setup page (bot/setup.py); there is nothing for Redis or a worker to do."""
    from bot.setup import WRITTEN, create_setup_app

    logs.get("mull").warning(f"setup mode: no GitHub App (MULL_APP_ID) is set, so {without}; open "
                             f"http://{settings.host}:{settings.port}/setup to create the GitHub App, then restart")
    app = create_setup_app(settings, Path(".env"), overridden=[name for name in WRITTEN if name in os.environ])
    _keep_running_finally_blocks()
    run_async(_uvicorn(settings, app).serve())  # type: ignore[attr-defined]
    return 0


def _uvicorn(settings: MullSettings, app) -> object:  # type: ignore[no-untyped-def]
    import uvicorn

    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None, access_log=False,
                            proxy_headers=False, lifespan="on", timeout_graceful_shutdown=10)
    return uvicorn.Server(config)


def cmd_web(settings: MullSettings, args: argparse.Namespace) -> int:
    if settings.app_id is None and settings.webhook_secret is None:  # a receiver needs only the secret
        return _serve_setup(settings, "only the setup page runs (no Redis)")
    settings.require_webhook_secret()
    with redis_for(settings) as url:
        _keep_running_finally_blocks()
        run_async(_uvicorn(settings, _web_app(settings, url)).serve())  # type: ignore[attr-defined]
    return 0


def cmd_worker(settings: MullSettings, args: argparse.Namespace) -> int:
    from worker.app import build_worker

    settings.require_app()  # before Redis starts: a worker has no setup mode

    async def work(url: str) -> None:
        # arq's Worker binds the running loop when constructed: build it inside the loop it runs on.
        with contextlib.suppress(asyncio.CancelledError):  # arq cancels its main task on SIGTERM/SIGINT
            await build_worker(settings, url, burst=args.burst).async_run()

    with redis_for(settings) as url:
        run_async(work(url))
    return 0


def cmd_serve(settings: MullSettings, args: argparse.Namespace) -> int:
    """Web and worker in one process: the one-machine default."""
    from worker.app import build_worker

    if settings.app_id is None:
        return _serve_setup(settings, "only the setup page runs: no worker, no Redis")
    settings.require_webhook_secret()

    async def both(url: str) -> None:
        worker = build_worker(settings, url, handle_signals=False)
        server = _uvicorn(settings, _web_app(settings, url))
        work = asyncio.create_task(worker.async_run())
        try:
            await server.serve()  # type: ignore[attr-defined]  # returns on SIGINT/SIGTERM
        finally:
            await worker.close()
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work

    with redis_for(settings) as url:
        _keep_running_finally_blocks()
        run_async(both(url))
    return 0


def cmd_replay(settings: MullSettings, args: argparse.Namespace) -> int:
    from worker.replay import replay

    status, text = replay(Path(args.file), args.event, args.url or f"http://{settings.host}:{settings.port}",
                          settings.require_webhook_secret(), args.delivery)
    print(f"{status} {text}")
    return 0 if status < 400 else 1


def cmd_status(settings: MullSettings, args: argparse.Namespace) -> int:
    from worker.status_report import print_status

    with redis_for(settings) as url:
        return asyncio.run(print_status(url, as_json=args.json))


def cmd_retry_deliveries(settings: MullSettings, args: argparse.Namespace) -> int:
    from worker.dead_letter_command import retry_deliveries
    from worker.dead_letters import UnknownDeadLetter

    if args.all == bool(args.guids):
        raise UsageError("name the dead letters to retry (GUIDs from `mull status`) or give --all, not both")
    with redis_for(settings) as url:
        try:
            return asyncio.run(retry_deliveries(url, None if args.all else args.guids, forget=args.forget))
        except UnknownDeadLetter as exc:
            raise UsageError(str(exc)) from exc


def cmd_try(settings: MullSettings, args: argparse.Namespace) -> int:
    from worker.try_display import display_for
    from worker.try_local import TryOptions, try_local

    if settings.log_level.upper() != "DEBUG":  # the display says what happens; logs only when something is wrong
        logging.getLogger().setLevel(logging.WARNING)
    options = TryOptions(repo=Path(args.repo), issue_file=Path(args.issue_file),
                         patch_file=Path(args.patch) if args.patch else None, keep=args.keep, critique=args.critique,
                         include_uncommitted=args.include_uncommitted)
    return asyncio.run(try_local(settings, options, display_for()))


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="mull", description="Mull: labeled issues become critiqued pull requests.")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("serve", help="web + worker (+ embedded Redis when MULL_REDIS_URL is unset)")
    sub.add_parser("web", help="the webhook receiver only")
    worker = sub.add_parser("worker", help="a worker only (run as many as you like)")
    worker.add_argument("--burst", action="store_true", help="exit once the queue is empty")
    replay = sub.add_parser("replay", help="sign a payload file and POST it to a running Mull")
    replay.add_argument("file")
    replay.add_argument("--event", required=True, help="X-GitHub-Event, e.g. issues")
    replay.add_argument("--url", help="server base URL (default http://MULL_HOST:MULL_PORT)")
    replay.add_argument("--delivery", help="X-GitHub-Delivery (default: a new uuid)")
    status = sub.add_parser("status", help="queues, running jobs and workers")
    status.add_argument("--json", action="store_true")
    retry = sub.add_parser("retry-deliveries", help="enqueue dead letters (deliveries that failed every try) again")
    retry.add_argument("guids", nargs="*", metavar="GUID", help="X-GitHub-Delivery of a dead letter")
    retry.add_argument("--all", action="store_true", help="every dead letter")
    retry.add_argument("--forget", action="store_true", help="remove them instead of retrying")
    trial = sub.add_parser("try", help="run the agent on a local repo and print the diff; no GitHub needed")
    trial.add_argument("--repo", required=True, help="path to a local git repository")
    trial.add_argument("--issue-file", required=True, help="Markdown file: first line the title, then the body")
    trial.add_argument("--patch", metavar="FILE", help="write the patch to FILE instead of printing it; "
                                                       "apply it with `git apply FILE`")
    trial.add_argument("--keep", action="store_true", help="keep the agent's tree afterwards and print where it is")
    trial.add_argument("--critique", action="store_true",
                       help="also critique the result as Mull would on the pull request: verdict and comments")
    trial.add_argument("--include-uncommitted", action="store_true",
                       help="start from the checkout with its uncommitted changes, not only its last commit")
    return top


COMMANDS = {"serve": cmd_serve, "web": cmd_web, "worker": cmd_worker, "replay": cmd_replay,
            "status": cmd_status, "retry-deliveries": cmd_retry_deliveries, "try": cmd_try}


def needs_of(args: argparse.Namespace, settings: MullSettings) -> startup_check.Needs:
    """What ``args.command`` needs before it starts; ``serve`` and ``web`` without an App serve /setup only."""
    if args.command == "serve":
        return startup_check.NOTHING if settings.app_id is None else replace(startup_check.SERVE, probe=True)
    if args.command == "web":
        no_app = settings.app_id is None and settings.webhook_secret is None
        return startup_check.NOTHING if no_app else startup_check.Needs(webhook=True)
    if args.command == "worker":
        return replace(startup_check.WORKER, probe=True)
    if args.command == "replay":
        return startup_check.Needs(webhook=True)
    if args.command == "try":  # its own model check comes with its progress display (worker/try_local.py)
        return startup_check.Needs(model=True, agent=True, critique=args.critique, sandbox=True)
    return startup_check.NOTHING


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings, invalid = read_settings()
        logs.configure(settings.log_level, settings.secret_values())
        startup_check.check_before_start(settings, needs_of(args, settings), invalid, logs.get("mull"))
        return COMMANDS[args.command](settings, args)
    except (ConfigError, EmbeddedRedisError, UsageError, SandboxUnavailable, ReplayError) as exc:
        print(f"mull: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
