"""Inside the sandbox: loopback TCP ports that lead to unix sockets of Mull's (the model gateway, the egress
proxy), and nothing else.

The sandbox has its own network namespace with only loopback, so an agent cannot reach Redis, GitHub or a
metadata address. Agents speak HTTP to a base URL, not to a unix socket, so this script listens on
127.0.0.1:<port> and copies every connection to the socket bound in from the host, both ways (as
anthropic-experimental/sandbox-runtime bridges its proxies into a bwrap network namespace). It listens
before it starts the agent, so the agent's first request never races the listener; it passes SIGTERM and
SIGINT on to the agent and exits with the agent's exit code.

Each PORT SOCKET pair is one such port (the gateway's; the egress proxy's when the run has network).
Run by Mull's own interpreter as ``python -I -S bridge.py PORT SOCKET [PORT SOCKET ...] -- ARGV...``:
standard library only, and nothing here may import Mull (the sandbox does not see Mull's code or its
virtualenv).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading

_CHUNK = 65536
_USAGE = "usage: bridge.py PORT SOCKET [PORT SOCKET ...] -- ARGV..."


def main(args: list[str]) -> int:
    if "--" not in args:
        print(_USAGE, file=sys.stderr)
        return 2
    split = args.index("--")
    pairs, command = args[:split], args[split + 1:]
    if not pairs or len(pairs) % 2 or not command or not all(port.isdigit() for port in pairs[::2]):
        print(_USAGE, file=sys.stderr)
        return 2
    listeners = [(socket.create_server(("127.0.0.1", int(port)), backlog=64), path)
                 for port, path in zip(pairs[::2], pairs[1::2], strict=True)]
    exited = threading.Event()
    started: list[int] = []

    def forward(number: int, _frame: object) -> None:
        if started and not exited.is_set():  # a reaped child's pid may belong to another process by now
            os.kill(started[0], number)

    # Signals wait (masked) until the child exists and the handlers are in place, so a SIGTERM sent as soon
    # as the command is up reaches the command rather than ending the bridge; the child starts unmasked.
    forwarded = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, forwarded)
    for sig in forwarded:
        signal.signal(sig, forward)
    # posix_spawn, not subprocess: the bridge starts before every CLI agent, and subprocess's imports alone
    # cost more than the rest of the bridge.
    try:
        started.append(os.posix_spawnp(command[0], command, os.environ, setsigmask=()))
    except OSError as exc:
        print(f"bridge: cannot start {command[0]}: {exc.strerror or exc}", file=sys.stderr)
        return 127
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, forwarded)
    for listener, socket_path in listeners:
        threading.Thread(target=_accept, args=(listener, socket_path), daemon=True).start()
    _pid, status = os.waitpid(started[0], 0)
    exited.set()
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code  # killed by signal N: the shell's 128 + N


def _accept(listener: socket.socket, socket_path: str) -> None:
    while True:
        client, _address = listener.accept()
        threading.Thread(target=_connect, args=(client, socket_path), daemon=True).start()


def _connect(client: socket.socket, socket_path: str) -> None:
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(socket_path)
    except OSError:
        upstream.close()
        client.close()  # the agent sees a reset connection, as it would from a server that is down
        return
    back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    back.start()
    _pump(client, upstream)
    back.join()
    upstream.close()
    client.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy until ``source`` ends, then end ``sink``'s sending side so the other end sees EOF too."""
    with contextlib.suppress(OSError):
        while data := source.recv(_CHUNK):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    os._exit(code)  # daemon threads may still be blocked in accept() or recv(); the agent is done
