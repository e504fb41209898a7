"""``mull try``: run the agent on a local repository and print its diff and summary — no GitHub at all.

It runs the same way as on GitHub (a mirror, a plain tree, Mull's own commit), so what it shows is what
Mull would push, and the agent never touches the user's checkout or its git metadata.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from bot.settings import ConfigError, MullSettings
from worker.agent import make_agent
from worker.agent.base import AgentTask, ModelAccess
from worker.agent.prompt import build_prompt, read_instructions
from worker.agent.sandbox import SandboxSpec, check_bwrap
from worker.branch_work import budget_of, new_run_id
from worker.gateway.local import local_gateway
from worker.repo_cache import GitError, git, init_mirror
from worker.run_tree import open_run_tree
from worker.tree_commit import commit

TRY_BASE = "refs/mull/try-base"
DIFF_ARGS = ("diff", "--no-color", "--no-ext-diff", "--no-textconv", "--stat", "--patch")


def read_issue(path: Path) -> tuple[str, str]:
    """First non-empty line (without a leading '#') is the title; the rest is the body."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"--issue-file {path}: {exc.strerror}") from None
    lines = text.strip().splitlines()
    if not lines:
        raise ConfigError(f"--issue-file {path} is empty: write the issue title on the first line, then the body")
    return lines[0].lstrip("#").strip(), "\n".join(lines[1:]).strip()


async def try_local(settings: MullSettings, repo: Path, issue_file: Path) -> int:
    settings.require_model()
    if settings.sandbox:
        check_bwrap()
    title, body = read_issue(issue_file)
    source = _git_dir_of(repo)
    with tempfile.TemporaryDirectory(prefix="mull-try-") as tmp:
        # A mirror of the repository's last commit, as Mull keeps one per repository on GitHub: the agent
        # works in a plain tree of it, and the user's checkout and its git metadata are never touched.
        mirror = Path(tmp) / "mirror.git"
        await init_mirror(mirror)
        try:
            await git("fetch", "--quiet", "--no-tags", "--no-recurse-submodules", str(repo.resolve()),
                      f"+HEAD:{TRY_BASE}", git_dir=mirror)
        except GitError as exc:
            raise ConfigError(f"--repo {repo}: {exc}") from None
        await _warn_uncommitted(repo, source)
        agent = make_agent(settings.agent_command, settings.llm_base_url or "")
        spec = SandboxSpec(enabled=settings.sandbox, ro_paths=tuple(settings.sandbox_ro_paths))
        budget = budget_of(settings)
        async with open_run_tree(Path(tmp) / "runs", mirror, "try", TRY_BASE,
                                 agent_repo=bool(settings.agent_command)) as run, \
                local_gateway(settings) as gateway, \
                gateway.run(new_run_id("try", 0, repo.name), settings.llm_model or "", budget.steps,
                            budget.tokens) as grant:
            prompt = build_prompt(repo.name, 0, title, body, read_instructions(run.tree))
            result = await agent.run(AgentTask(prompt=prompt, worktree=run.tree, sandbox=spec,
                                               model=ModelAccess(gateway.socket_path, grant)), budget)
            sha = await commit(run, "Changes by mull try\n", "Mull", "mull@localhost")
        diff = "" if sha is None else await git(*DIFF_ARGS, run.base_sha, sha, git_dir=mirror)
    print(diff or "(the agent changed nothing)")
    print("## Summary\n" + result.summary)
    for item in result.not_done:
        print(f"- could not: {item}")
    if result.budget_tripped:
        print(f"budget tripped: {result.budget_tripped}")
    if result.error:
        print(f"error: {result.error}")
    return 0 if diff else 1


def _git_dir_of(repo: Path) -> Path:
    """The git dir of the user's checkout (``.git``, or where a ``.git`` file points)."""
    dotgit = repo / ".git"
    if dotgit.is_dir():
        return dotgit
    if dotgit.is_file():
        text = dotgit.read_text(errors="replace").strip()
        if text.startswith("gitdir:"):
            return (repo / text.removeprefix("gitdir:").strip()).resolve()
    raise ConfigError(f"--repo {repo} is not a git repository (no .git): pass the path of a local clone")


async def _warn_uncommitted(repo: Path, git_dir: Path) -> None:
    """Say so when the checkout has changes the run leaves out: it starts from the last commit only."""
    status = await git("status", "--porcelain", "--untracked-files=normal", git_dir=git_dir, work_tree=repo,
                       env={"GIT_OPTIONAL_LOCKS": "0"}, check=False)
    changed = [line[3:] for line in status.splitlines() if line.strip()]
    if changed:
        print(f"mull try: {repo} has uncommitted changes ({len(changed)} path(s), e.g. {changed[0]}) that are not "
              "part of this run: the agent starts from the last commit. Commit them to include them.",
              file=sys.stderr)
