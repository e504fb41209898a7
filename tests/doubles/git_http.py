"""Git smart HTTP for the GitHub double: ``git http-backend`` run as a CGI per request.

Auth is GitHub's: the installation token is the Basic password (``x-access-token:<token>``) or a Bearer
token. A push that moves refs sends ``push`` (and ``pull_request.synchronize``) webhooks, as GitHub does.
"""

from __future__ import annotations

import asyncio
import sys

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from . import bare_repo
from .github_http import double_of, emit_all, parse_auth
from .github_push import push_events
from .github_state import Repo, State

UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Basic realm="GitHub"'}


def _cgi_env(request: Request, state: State, owner: str, name: str, rest: str, length: int) -> dict[str, str]:
    env = bare_repo.git_env({
        "GIT_PROJECT_ROOT": str(state.root),
        "GIT_HTTP_EXPORT_ALL": "1",
        "PATH_INFO": f"/{owner}/{name}.git/{rest}",
        "QUERY_STRING": request.url.query,
        "REQUEST_METHOD": request.method,
        "CONTENT_TYPE": request.headers.get("content-type", ""),
        "CONTENT_LENGTH": str(length),
        "REMOTE_USER": "x-access-token",
        "REMOTE_ADDR": "127.0.0.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
    })
    for header, var in (("content-encoding", "HTTP_CONTENT_ENCODING"), ("git-protocol", "HTTP_GIT_PROTOCOL")):
        if header in request.headers:
            env[var] = request.headers[header]
    return env


async def _feed(proc: asyncio.subprocess.Process, body: bytes) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write(body)
        await proc.stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        proc.stdin.close()


async def git_endpoint(request: Request) -> Response:
    state = double_of(request).state
    owner, name, rest = (request.path_params[k] for k in ("owner", "name", "rest"))
    name = name.removesuffix(".git")
    repo = state.find_repo(owner, name)
    kind, _, token = parse_auth(request.headers.get("authorization"), state)
    if token is None or repo is None or kind not in ("basic", "token") or not state.token_covers(token, repo):
        return PlainTextResponse("Unauthorized\n", 401, headers=UNAUTHORIZED_HEADERS)
    pushing = rest == "git-receive-pack" or request.query_params.get("service") == "git-receive-pack"
    if pushing and token.permissions.get("contents") != "write":
        return PlainTextResponse("Write access to repository not granted.\n", 403)
    body = await request.body()
    before = bare_repo.refs(repo.path) if rest == "git-receive-pack" else None
    proc = await asyncio.create_subprocess_exec(
        "git", "http-backend", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_cgi_env(request, state, repo.owner.login, repo.name, rest, len(body)))
    feeder = asyncio.ensure_future(_feed(proc, body))
    errors = asyncio.ensure_future(proc.stderr.read())  # type: ignore[union-attr]
    assert proc.stdout is not None
    status, headers = 200, {}
    while (line := await proc.stdout.readline()).strip():
        key, _, value = line.decode("latin-1").partition(":")
        if key.lower() == "status":
            status = int(value.strip().split()[0])
        else:
            headers[key.strip()] = value.strip()

    async def stream():
        try:
            while chunk := await proc.stdout.read(65536):  # type: ignore[union-attr]
                yield chunk
            await feeder
            code = await proc.wait()
            stderr = await errors
            if code != 0:
                detail = stderr.decode(errors="replace")
                print(f"git http-backend {rest} exited {code}: {detail}", file=sys.stderr)
            elif before is not None:
                _after_push(request, repo, before)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    media_type = headers.pop("Content-Type", None)
    return StreamingResponse(stream(), status, headers=headers, media_type=media_type)


def _after_push(request: Request, repo: Repo, before: dict[str, str]) -> None:
    """Send ``push`` for each moved ref, and ``pull_request.synchronize`` for open PRs on a moved branch."""
    state = double_of(request).state
    emit_all(request, push_events(state, repo, before, state.bot))


routes = [Route("/git/{owner}/{name}/{rest:path}", git_endpoint, methods=["GET", "POST"])]
