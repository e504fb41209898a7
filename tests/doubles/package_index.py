"""A tiny Python package index (PEP 503 simple layout) over HTTP, and the wheels it serves, built here.

The sandbox's network is an empty namespace; setup reaches an index only through Mull's egress proxy, which the
proxy variables point at for every address but loopback (``NO_PROXY`` keeps the model gateway's bridged port
direct). So the index listens on an address of this host that is not loopback (``host_address``), and the
operator lists that exact ``host:port`` in ``MULL_SANDBOX_ALLOW_HOSTS``; a host without one cannot run such a test.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import ipaddress
import re
import socket
import threading
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

NO_ADDRESS = ("this host has no address but loopback: the sandbox reaches a package index only through Mull's "
              "egress proxy, which loopback addresses bypass (NO_PROXY)")


def host_address() -> str | None:
    """An IPv4 address of this host that is not loopback and can be listened on, or None.

    The address the kernel would send from towards a public address (a UDP connect sends nothing)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("1.1.1.1", 53))
            address = str(probe.getsockname()[0])
        if ipaddress.ip_address(address).is_loopback or ipaddress.ip_address(address).is_unspecified:
            return None
        with socket.socket() as listener:
            listener.bind((address, 0))
    except OSError:
        return None
    return address


def normalized(name: str) -> str:
    """PEP 503's name normalisation."""
    return re.sub(r"[-_.]+", "-", name).lower()


def build_wheel(folder: Path, name: str, version: str = "1.0", *, requires: Sequence[str] = (),
                modules: dict[str, str] | None = None, scripts: dict[str, str] | None = None) -> Path:
    """A pure-Python wheel written as pip expects one (no build tool): ``modules`` (path → source) in it,
    ``requires`` as Requires-Dist, ``scripts`` as console scripts (name → ``module:function``)."""
    dist = f"{name.replace('-', '_')}-{version}"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {requirement}\n" for requirement in requires)
    files = {path: source.encode() for path, source in (modules or {}).items()}
    files[f"{dist}.dist-info/METADATA"] = metadata.encode()
    files[f"{dist}.dist-info/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                        b"Tag: py3-none-any\n")
    if scripts:
        lines = "".join(f"{script} = {target}\n" for script, target in scripts.items())
        files[f"{dist}.dist-info/entry_points.txt"] = f"[console_scripts]\n{lines}".encode()
    record = []
    path = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for member, data in files.items():
            wheel.writestr(member, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{member},sha256={digest},{len(data)}")
        wheel.writestr(f"{dist}.dist-info/RECORD", "\n".join([*record, f"{dist}.dist-info/RECORD,,"]) + "\n")
    return path


def dozen_wheels(folder: Path) -> list[str]:
    """Twelve small packages, some depending on others (``dep05`` needs ``dep01`` and ``dep02``, …), each with
    a few modules: a Python project's dependencies in miniature. The names a requirements file would list."""
    names = [f"dep{n:02d}" for n in range(1, 13)]
    for n, name in enumerate(names, start=1):
        requires = [names[n - 5], names[n - 4]] if n > 4 else []
        imports = "".join(f"from {other} import VALUE as _{k}\n" for k, other in enumerate(requires))
        modules = {f"{name}/__init__.py": f"{imports}VALUE = {n}\n\n\ndef main():\n    print(VALUE)\n"}
        modules.update({f"{name}/part{k}.py": f"def f{k}(x):\n    return x + {k}\n" * 20 for k in range(20)})
        build_wheel(folder, name, requires=requires, modules=modules,
                    scripts={f"{name}-cli": f"{name}:main"} if n == 1 else None)
    return names


@dataclass
class PackageIndex:
    url: str  # the simple index's URL: http://host:port/simple/
    host: str
    port: int
    requests: list[str] = field(default_factory=list)  # paths asked for, in order


@contextlib.contextmanager
def package_index(wheels: Path, host: str) -> Iterator[PackageIndex]:
    """Serve the wheels of ``wheels`` as a PEP 503 index on ``host`` (a free port)."""
    projects: dict[str, list[Path]] = {}
    for wheel in sorted(wheels.glob("*.whl")):
        projects.setdefault(normalized(wheel.name.split("-", 1)[0]), []).append(wheel)
    lock = threading.Lock()
    index = PackageIndex("", host, 0)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?", 1)[0]
            if path.startswith("http://"):  # a proxy's absolute form would mean the proxy forwarded it unchanged
                path = "/" + path.split("/", 3)[3]
            with lock:
                index.requests.append(path)
            body, kind = self._answer(path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _answer(self, path: str) -> tuple[bytes | None, str]:
            page = "text/html"
            if path == "/simple/":
                links = "".join(f'<a href="{name}/">{name}</a>\n' for name in sorted(projects))
                return f"<!DOCTYPE html><html><body>\n{links}</body></html>\n".encode(), page
            found = re.fullmatch(r"/simple/([^/]+)/", path)
            if found:
                files = projects.get(normalized(found.group(1)))
                if files is None:
                    return None, page
                links = "".join(f'<a href="/files/{html.escape(wheel.name)}#sha256='
                                f'{hashlib.sha256(wheel.read_bytes()).hexdigest()}">{html.escape(wheel.name)}</a>\n'
                                for wheel in files)
                return f"<!DOCTYPE html><html><body>\n{links}</body></html>\n".encode(), page
            wanted = path.removeprefix("/files/")
            for files in projects.values():
                for wheel in files:
                    if path.startswith("/files/") and wheel.name == wanted:
                        return wheel.read_bytes(), "application/octet-stream"
            return None, page

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    index.port = int(server.server_address[1])
    index.url = f"http://{host}:{index.port}/simple/"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield index
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
