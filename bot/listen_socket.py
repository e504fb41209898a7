"""The web server's listening socket, bound before Mull starts anything else.

A port that is taken must stop ``mull serve`` at once with one line, not after the embedded Redis and the
worker have started (uvicorn binds late and, failing, would leave the worker running without a web server).
So the socket is bound first and handed to uvicorn; what can go wrong is worded as what to change.
"""

from __future__ import annotations

import errno
import socket

BACKLOG = 2048  # uvicorn's default


class ListenError(Exception):
    """The web server cannot listen where it is configured to; the message says what to change."""


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (port 0: any free one), or ListenError."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror:
        raise ListenError(f"MULL_HOST={host} is not an address of this machine: use 127.0.0.1 (this machine only) "
                          "or 0.0.0.0 (every interface)") from None
    sock = socket.socket(family, kind, proto)
    try:
        # Lets a restarted Mull bind while the old one's connections linger in TIME_WAIT; never a live listener.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise ListenError(_explain(exc, host, port)) from None
    sock.setblocking(False)
    return sock


def _explain(exc: OSError, host: str, port: int) -> str:
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return (f"port {port} is taken on {host}: another program (perhaps another Mull) listens there; stop it, "
                f"or choose another port with MULL_PORT=N or --port N")
    if exc.errno == errno.EACCES:
        return (f"cannot listen on {where}: ports below 1024 need root; choose another with MULL_PORT=N "
                "or --port N (e.g. 8000)")
    if exc.errno == errno.EADDRNOTAVAIL:
        return (f"MULL_HOST={host} is not an address of this machine: use 127.0.0.1 (this machine only) "
                "or 0.0.0.0 (every interface)")
    return f"cannot listen on {where}: {exc.strerror}"
