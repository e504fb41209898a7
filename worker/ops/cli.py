"""The ``mull`` command: serve | web | worker | replay | status | retry-deliveries | try.

It lives in ``worker/`` because it composes both halves (``worker/`` may import ``bot/``, not the reverse).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bot import logs
from bot.embedded_redis import EmbeddedRedisError
from bot.listen_socket import ListenError, bind
from bot.redaction import Redactor
from bot.settings import ConfigError, MullSettings, read_settings
from worker.agent.sandbox import SandboxUnavailable
from worker.ops import startup_check
from worker.ops.redis_access import NothingRunning, RedisUnavailable, redis_for
from worker.ops.replay import ReplayError
from worker.ops.supervise import Part, PartFailed, supervise


class UsageError(Exception):
    pass


def run_async(coro) -> object:  # type: ignore[no-untyped-def]
    """asyncio.run on uvloop when installed (it is, with uvicorn[standard]): the receiver's hot path needs it."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def _with_port(settings: MullSettings, args: argparse.Namespace) -> MullSettings:
    """``--port`` wins over MULL_PORT."""
    return settings if args.port is None else settings.model_copy(update={"port": args.port})


def _listen(settings: MullSettings) -> socket.socket:
    """The web server's socket, bound before anything else starts: a taken port is one line, nothing left running."""
    return bind(settings.host, settings.port)


def _web_part(app: Any, sock: socket.socket) -> Part:
    """uvicorn on the socket already bound; SIGINT/SIGTERM are the supervisor's (worker/ops/supervise.py), not its."""
    import uvicorn

    from bot.http_protocol import CoalescingHttpToolsProtocol

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):  # type: ignore[no-untyped-def]
            yield

    # Headers and body in one write (bot/http_protocol.py): the webhook path's answers are small.
    config = uvicorn.Config(app, log_config=None, access_log=False, proxy_headers=False, lifespan="on",
                            http=CoalescingHttpToolsProtocol, timeout_graceful_shutdown=10)
    server = Server(config)

    def stop(sig: int, force: bool) -> None:
        server.should_exit = True
        server.force_exit = server.force_exit or force

    async def run() -> None:
        host, port = sock.getsockname()[:2]
        logs.get("mull").info("web server listening", url=f"http://{f'[{host}]' if ':' in host else host}:{port}")
        await server.serve(sockets=[sock])

    return Part("web server", run, stop)


def _worker_part(worker: Any) -> Part:
    return Part("worker", worker.run_until_stopped, lambda sig, force: worker.request_stop(sig, force=force))


def _supervise(settings: MullSettings, parts: Sequence[Part]) -> None:
    run_async(supervise(parts, logs.get("mull"), Redactor(settings.secret_values())))


def _web_app(settings: MullSettings, redis_url: str):  # type: ignore[no-untyped-def]
    from bot.github_login import GitHubOAuth
    from bot.receiver import create_app
    from bot.session_site import SessionSiteConfig

    secret = settings.require_webhook_secret()
    client_secret = settings.github_client_secret.get_secret_value() if settings.github_client_secret else ""
    oauth = GitHubOAuth(settings.github_url, settings.github_client_id, client_secret) \
        if settings.github_client_id and client_secret else None
    sessions = SessionSiteConfig(cookie_secret=secret, oauth=oauth, public_url=settings.public_url,
                                 redactor=Redactor(settings.secret_values()), bucket=settings.bucket())
    return create_app(secret, redis_url, app_slug=settings.app_slug, sessions=sessions)


def _serve_setup(settings: MullSettings, without: str) -> int:
    """No GitHub App yet: serve only the setup page (bot/setup.py); there is nothing for Redis or a worker to do."""
    from bot.setup import WRITTEN, create_setup_app

    with _listen(settings) as sock:
        port = sock.getsockname()[1]
        logs.get("mull").warning(f"setup mode: no GitHub App (MULL_APP_ID) is set, so {without}; open "
                                 f"http://{settings.host}:{port}/setup to create the GitHub App, then restart")
        app = create_setup_app(settings, Path(".env"), overridden=[name for name in WRITTEN if name in os.environ])
        _supervise(settings, [_web_part(app, sock)])
    return 0


def cmd_web(settings: MullSettings, args: argparse.Namespace) -> int:
    settings = _with_port(settings, args)
    if settings.app_id is None and settings.webhook_secret is None:  # a receiver needs only the secret
        return _serve_setup(settings, "only the setup page runs (no Redis)")
    settings.require_webhook_secret()
    with _listen(settings) as sock, redis_for(settings) as url:
        _supervise(settings, [_web_part(_web_app(settings, url), sock)])
    return 0


def cmd_worker(settings: MullSettings, args: argparse.Namespace) -> int:
    from worker.app import build_worker, check_ready

    check_ready(settings)  # before Redis starts: a worker has no setup mode

    async def work(url: str) -> None:
        # arq's Worker binds the running loop when constructed: build it inside the loop it runs on.
        worker = build_worker(settings, url, burst=args.burst, handle_signals=False, ready_checked=True)
        await supervise([_worker_part(worker)], logs.get("mull"), Redactor(settings.secret_values()))

    with redis_for(settings) as url:
        run_async(work(url))
    return 0


def cmd_serve(settings: MullSettings, args: argparse.Namespace) -> int:
    """Web and worker in one process: the one-machine default."""
    from worker.app import build_worker, check_ready

    settings = _with_port(settings, args)
    if settings.app_id is None:
        return _serve_setup(settings, "only the setup page runs: no worker, no Redis")
    settings.require_webhook_secret()
    check_ready(settings)

    async def both(url: str, sock: socket.socket) -> None:
        worker = build_worker(settings, url, handle_signals=False, ready_checked=True)
        parts = [_web_part(_web_app(settings, url), sock), _worker_part(worker)]
        await supervise(parts, logs.get("mull"), Redactor(settings.secret_values()))

    with _listen(settings) as sock, redis_for(settings) as url:
        run_async(both(url, sock))
    return 0


def cmd_replay(settings: MullSettings, args: argparse.Namespace) -> int:
    from worker.ops.replay import replay

    status, text = replay(Path(args.file), args.event, args.url or f"http://{settings.host}:{settings.port}",
                          settings.require_webhook_secret(), args.delivery)
    print(f"{status} {text}")
    return 0 if status < 400 else 1


def cmd_status(settings: MullSettings, args: argparse.Namespace) -> int:
    from worker.ops.status_report import print_status

    with redis_for(settings, join=True, start=False) as url:
        return asyncio.run(print_status(url, as_json=args.json, settings=settings))


def cmd_retry_deliveries(settings: MullSettings, args: argparse.Namespace) -> int:
    from worker.ops.dead_letter_command import retry_deliveries
    from worker.webhooks.dead_letters import UnknownDeadLetter

    if args.all == bool(args.guids):
        raise UsageError("name the dead letters to retry (GUIDs from `mull status`) or give --all, not both")
    with redis_for(settings, join=True) as url:
        try:
            return asyncio.run(retry_deliveries(url, None if args.all else args.guids, forget=args.forget))
        except UnknownDeadLetter as exc:
            raise UsageError(str(exc)) from exc


def cmd_try(settings: MullSettings, args: argparse.Namespace) -> int:
    from worker.local_try.display import display_for
    from worker.local_try.run import TryOptions, try_local

    if settings.log_level.upper() != "DEBUG":  # the display says what happens; logs only when something is wrong
        logging.getLogger().setLevel(logging.WARNING)
    options = TryOptions(repo=Path(args.repo), issue_file=Path(args.issue_file),
                         patch_file=Path(args.patch) if args.patch else None, keep=args.keep, critique=args.critique,
                         include_uncommitted=args.include_uncommitted)
    return asyncio.run(try_local(settings, options, display_for()))


SETTINGS_NOTE = "Settings come from MULL_* environment variables, then .env in the working directory."
REDIS_NOTE = ("  MULL_REDIS_URL     the Redis to use; unset: an embedded Redis under MULL_DATA_DIR, owned by one Mull\n"
              "  MULL_DATA_DIR      where data and the embedded Redis live (default .mull)")
WEB_NOTE = ("  MULL_HOST          address the web server binds (default 127.0.0.1)\n"
            "  MULL_PORT          its port (default 8000); --port wins")
LOG_NOTE = ("  MULL_LOG_LEVEL     DEBUG, INFO (default), WARNING or ERROR\n"
            "  MULL_LOG_FORMAT    auto (default: readable on a terminal, JSON lines otherwise), console or json")
APP_NOTE = ("  MULL_APP_ID, MULL_PRIVATE_KEY or MULL_PRIVATE_KEY_PATH   the GitHub App (`mull serve` without them "
            "serves /setup)\n"
            "  MULL_WEBHOOK_SECRET                                      the App's webhook secret")
MODEL_NOTE = ("  MULL_LLM_BASE_URL, MULL_LLM_MODEL, MULL_LLM_API_KEY      the model the agents use\n"
              "  MULL_WORKER_JOBS   jobs one worker runs at once (default 4)\n"
              "  MULL_SANDBOX       run agent commands under bubblewrap (default true)")
STOP_NOTE = "Ctrl-C or SIGTERM stops it cleanly (running jobs are cancelled and rerun later); a second one at once."


def _environment(*notes: str, after: str = "") -> str:
    return "\n".join([*(after and [after, ""]), "main settings:", *notes, "", SETTINGS_NOTE,
                      "Every setting: README.md, Configuration."])


def _port_number(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"'{text}' is not a port number (0 to 65535)")
    return int(text)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mull")
    except PackageNotFoundError:  # pragma: no cover - run from a checkout that was never installed
        return "unknown (not installed)"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="mull", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Mull: a GitHub App that turns labeled issues into critiqued pull requests.",
        epilog="Start with `mull serve` (or `make run`); without a GitHub App it serves a setup page.\n"
               "`mull COMMAND --help` says more about each command.\n" + SETTINGS_NOTE)
    top.add_argument("--version", action="version", version=f"mull {_version()}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, description: str, epilog: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=summary, description=description, epilog=epilog,
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    serve = command(
        "serve", "web + worker (+ embedded Redis when MULL_REDIS_URL is unset): the one-machine default",
        "Run the webhook receiver and a worker in one process, plus an embedded Redis when MULL_REDIS_URL is "
        "unset. Without a GitHub App configured it serves only the setup page that creates one. If either part "
        "stops, Mull stops, with one line saying why.",
        _environment(WEB_NOTE, REDIS_NOTE, APP_NOTE, MODEL_NOTE, LOG_NOTE, after=STOP_NOTE))
    web = command(
        "web", "the webhook receiver only",
        "Run the webhook receiver alone: it checks GitHub's signature, stores each delivery in Redis and "
        "answers 202; workers (`mull worker`) do the rest. Needs MULL_WEBHOOK_SECRET; without it and without "
        "an App it serves the setup page.",
        _environment(WEB_NOTE, REDIS_NOTE, "  MULL_WEBHOOK_SECRET   the App's webhook secret", LOG_NOTE,
                     after=STOP_NOTE))
    for server in (serve, web):
        server.add_argument("--port", type=_port_number, metavar="N", help="port to listen on (default MULL_PORT)")
    worker = command(
        "worker", "a worker only (run as many as you like against one Redis)",
        "Run a worker: it takes jobs from Redis (deliveries, agent runs, critiques, revisions, digests) and "
        "runs them. Run as many as you like against one Redis (MULL_REDIS_URL); the embedded Redis belongs to "
        "one Mull only.",
        _environment(REDIS_NOTE, APP_NOTE, MODEL_NOTE, "  MULL_SHUTDOWN_WAIT seconds running jobs may finish "
                     "when stopping (default 0)", LOG_NOTE, after=STOP_NOTE))
    worker.add_argument("--burst", action="store_true", help="exit once the queue is empty")
    replay = command(
        "replay", "sign a payload file and POST it to a running Mull",
        "Sign a saved webhook payload with MULL_WEBHOOK_SECRET and POST it to a running Mull, as GitHub would.",
        _environment("  MULL_WEBHOOK_SECRET   the secret to sign with",
                     "  MULL_HOST, MULL_PORT  where Mull runs, unless --url says"))
    replay.add_argument("file", help="the JSON payload, e.g. from the App's advanced settings")
    replay.add_argument("--event", required=True, help="X-GitHub-Event, e.g. issues")
    replay.add_argument("--url", help="server base URL (default http://MULL_HOST:MULL_PORT)")
    replay.add_argument("--delivery", help="X-GitHub-Delivery (default: a new uuid)")
    status = command(
        "status", "queues, running jobs and workers",
        "Show queued, deferred and running jobs, live workers, the review backlog per repository, "
        "installations, recent failures and dead letters. It only reads: with the embedded Redis it joins the "
        "one a running Mull owns in this directory, and says so when nothing runs here.",
        _environment(REDIS_NOTE))
    status.add_argument("--json", action="store_true", help="the report as JSON")
    retry = command(
        "retry-deliveries", "enqueue dead letters (deliveries that failed every try) again",
        "Enqueue dead letters again: deliveries whose handling failed on every try (GitHub got 202, so it will "
        "not redeliver them). GUIDs are listed by `mull status`.",
        _environment(REDIS_NOTE))
    retry.add_argument("guids", nargs="*", metavar="GUID", help="X-GitHub-Delivery of a dead letter")
    retry.add_argument("--all", action="store_true", help="every dead letter")
    retry.add_argument("--forget", action="store_true", help="remove them instead of retrying")
    trial = command(
        "try", "run the agent on a local repo and print the diff; no GitHub needed",
        "Run the agent on the last commit of a local repository with an issue written in a file, and print "
        "the patch (for `git apply`) and a summary. The repository's .github/mull.yml applies as on GitHub: "
        "`setup:` runs before the agent, `test:` on its result. No GitHub, no Redis, no credentials but the "
        "model's. Exits 0 with a patch whose tests passed, 1 when setup or the tests failed or the agent changed "
        "nothing or stopped early, 2 on bad input.",
        _environment("  MULL_LLM_BASE_URL, MULL_LLM_MODEL, MULL_LLM_API_KEY   the model the agent uses",
                     "  MULL_AGENT_COMMAND   a CLI agent instead of the builtin one",
                     "  MULL_SANDBOX         run agent commands under bubblewrap (default true)"))
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

# Mull could not start as configured (exit 2), or started and could not go on (exit 1); one line each.
REFUSALS = (ConfigError, EmbeddedRedisError, UsageError, SandboxUnavailable, ReplayError, ListenError,
            RedisUnavailable)
FAILURES = (PartFailed, NothingRunning)


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
    if args.command == "try":  # its own model check comes with its progress display (worker/local_try/run.py)
        return startup_check.Needs(model=True, agent=True, critique=args.critique, sandbox=True)
    return startup_check.NOTHING


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings, invalid = read_settings()
        logs.configure(settings.log_level, settings.secret_values(), fmt=settings.log_format)
        startup_check.check_before_start(settings, needs_of(args, settings), invalid, logs.get("mull"))
        return COMMANDS[args.command](settings, args)
    except REFUSALS as exc:
        print(f"mull: {exc}", file=sys.stderr)
        return 2
    except FAILURES as exc:
        print(f"mull: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
