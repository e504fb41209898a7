"""``mull try``: run the agent on a local repository and print its diff and summary — no GitHub at all."""

from __future__ import annotations

import tempfile
from pathlib import Path

from bot.settings import ConfigError, MullSettings
from worker.agent import make_agent
from worker.agent.base import AgentTask
from worker.agent.prompt import build_prompt, read_instructions
from worker.agent.sandbox import SandboxSpec, check_bwrap
from worker.branch_work import budget_of
from worker.repo_cache import GitError, git


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
    if not (repo / ".git").exists():
        raise ConfigError(f"--repo {repo} is not a git repository (no .git): pass the path of a local clone")
    with tempfile.TemporaryDirectory(prefix="mull-try-") as tmp:
        work = Path(tmp) / "repo"
        try:
            await git("clone", "--quiet", "--no-hardlinks", str(repo.resolve()), str(work), cwd=Path(tmp))
        except GitError as exc:
            raise ConfigError(f"--repo {repo}: {exc}") from None
        agent = make_agent(settings.agent_command, settings.llm_base_url,
                           settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
                           settings.llm_model)
        spec = SandboxSpec(enabled=settings.sandbox, ro_paths=tuple(settings.sandbox_ro_paths))
        prompt = build_prompt(repo.name, 0, title, body, read_instructions(work))
        result = await agent.run(AgentTask(prompt=prompt, worktree=work, sandbox=spec), budget_of(settings))
        await git("add", "--all", cwd=work)
        diff = await git("diff", "--cached", "--stat", "--patch", cwd=work)
    print(diff or "(the agent changed nothing)")
    print("## Summary\n" + result.summary)
    for item in result.not_done:
        print(f"- could not: {item}")
    if result.budget_tripped:
        print(f"budget tripped: {result.budget_tripped}")
    if result.error:
        print(f"error: {result.error}")
    return 0 if diff else 1
