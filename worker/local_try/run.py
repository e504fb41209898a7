"""``mull try``: run the agent on a local repository and show its patch and summary — no GitHub at all.

It runs the same way as on GitHub (a mirror, a plain tree, Mull's own commit, the model gateway), so what it
shows is what Mull would push, and the agent never touches the user's checkout or its git metadata. The
patch is ``git diff --binary`` from the start to Mull's commit: ``git apply`` takes it on the checkout.

Before the long part, the model is asked whether it is there at all (``worker/ops/model_check.py``), so a
server that is down or a wrong key costs one line and a second, not minutes. How the run is shown (live on
a terminal, quiet in a pipe) is the display's business (``worker/local_try/display.py``); this module only tells it
what happens.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bot.settings import ConfigError, MullSettings
from worker.agent import TemplateError, make_agent
from worker.agent.base import AgentTask, ModelAccess
from worker.agent.project_commands import ProjectRun, SetupFailed
from worker.agent.prompt import build_prompt, read_instructions
from worker.agent.sandbox import check_bwrap
from worker.critique.diff import GIT_DIFF_ARGS, from_git_diff
from worker.critique.run import CritiqueOutcome
from worker.critique.tests_section import tests_section
from worker.egress import egress_proxy, for_agent
from worker.egress.session import merged
from worker.gateway.local import local_gateway
from worker.jobs.branch_work import agent_budget, new_run_id, sandbox_for
from worker.local_try import project
from worker.local_try.critique import critique_change
from worker.local_try.display import TryDisplay
from worker.local_try.report import TryReport, setup_failed
from worker.local_try.start import start_from
from worker.ops.model_check import diagnose, read_transcript, shown_url
from worker.ops.model_probe import check_models, configured_models
from worker.trees.repo_cache import git, init_mirror
from worker.trees.run_tree import open_run_tree
from worker.trees.tree_commit import commit

TRY_BASE = "refs/mull/try-base"
# What `git apply` takes back: binary files as binary patches, renames as renames, fixed a/ b/ prefixes.
PATCH_ARGS = (*GIT_DIFF_ARGS, "--binary", "--no-textconv")


@dataclass(frozen=True)
class TryOptions:
    repo: Path
    issue_file: Path
    patch_file: Path | None = None  # --patch: write the patch here instead of showing it
    keep: bool = False  # --keep: keep the agent's tree and say where
    critique: bool = False  # --critique: critique the result as Mull would on the pull request
    include_uncommitted: bool = False  # --include-uncommitted: start from the checkout as it is


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


async def try_local(settings: MullSettings, options: TryOptions, display: TryDisplay) -> int:
    """Run the agent on ``options.repo``; 0 when it finished with a patch, 1 when it changed nothing or stopped
    early. Bad input and an unusable model raise ConfigError before anything long starts."""
    settings.require_model()
    assert settings.llm_base_url is not None and settings.llm_model is not None  # require_model says so
    repo = options.repo
    name = repo.resolve().name  # `--repo .` names the directory it is
    title, body = read_issue(options.issue_file)
    _git_dir_of(repo)
    if options.patch_file is not None:
        _check_patch_target(options.patch_file)
    with display:
        await _check_models(settings, options, display)
        if settings.sandbox:
            check_bwrap()
        with tempfile.TemporaryDirectory(prefix="mull-try-") as tmp:
            scratch = Path(tmp)
            mirror = scratch / "mirror.git"
            await init_mirror(mirror)
            display.phase(f"reading {repo}")
            start = await start_from(repo, mirror, TRY_BASE, include_uncommitted=options.include_uncommitted,
                                     scratch=scratch)
            display.notice(f"starting from {start.describe()}", warning=bool(start.uncommitted) and not start.included)
            config = await project.config_at(mirror, TRY_BASE, name, settings)
            budget = agent_budget(settings, config)
            started = time.monotonic()
            critique: CritiqueOutcome | None = None
            kept: Path | None = None
            tests: ProjectRun | None = None
            async with open_run_tree(scratch / "runs", mirror, "try", TRY_BASE,
                                     agent_repo=bool(settings.agent_command)) as run, \
                    local_gateway(settings, log=display) as gateway:
                instructions = read_instructions(run.tree)  # before setup, as on GitHub: the start's files
                prompt = build_prompt(name, 0, title, body, instructions, setup_ran=bool(config.setup),
                                      test_command=config.test)
                if config.setup:
                    display.phase(f"running the repository's setup ({len(config.setup)} command"
                                  f"{'s' if len(config.setup) != 1 else ''}, at most {config.setup_timeout:g} s)")
                try:
                    setup, setup_blocked = await project.prepare(config, run, settings)
                except SetupFailed as exc:
                    display.notice(setup_failed(exc), warning=True)
                    return 1
                async with gateway.run(new_run_id("try", 0, name), settings.llm_model, budget.steps,
                                       budget.tokens) as grant, \
                        egress_proxy(for_agent(settings.sandbox_allowed, config.network)) as egress:
                    display.phase(f"running {_agent_name(settings)} with {settings.llm_model} (at most "
                                  f"{budget.steps} model requests, {budget.tokens:,} tokens, {budget.seconds:g} s)")
                    try:
                        agent = make_agent(settings.agent_command, settings.llm_base_url)  # the builtin one: seconds
                    except TemplateError as exc:
                        raise ConfigError(str(exc)) from None
                    result = await agent.run(AgentTask(prompt=prompt, worktree=run.tree,
                                                       sandbox=egress.confine(sandbox_for(settings, run)),
                                                       model=ModelAccess(gateway.socket_path, grant),
                                                       events=display), budget)
                    result = dataclasses.replace(result, blocked=merged(setup_blocked, egress.blocked()))
                display.phase("committing what the agent changed")
                sha = await commit(run, "Changes by mull try\n", "Mull", "mull@localhost", setup=setup)
                if sha is None or result.error:
                    problem = diagnose(read_transcript(grant.transcript), settings.llm_base_url, settings.llm_model,
                                       needs_tools=not settings.agent_command and result.error is not None)
                    if problem:
                        raise ConfigError(problem)
                patch = "" if sha is None else await git(*PATCH_ARGS, run.base_sha, sha, git_dir=mirror)
                if sha is not None and config.test:  # after the commit: what the tests write is not in the patch
                    display.phase(f"running the tests: {config.test} (at most {config.test_timeout:g} s)")
                    tests = await project.check(config, run, settings)
                if options.keep:
                    kept = _keep(run.tree, name)
                if options.critique and sha is not None:
                    display.phase(f"critiquing the change with {settings.critique_model or settings.llm_model}")
                    critique = await critique_change(settings, gateway, mirror, scratch / "runs", name,
                                                     run.base_sha, sha, title, result.summary, instructions,
                                                     tests=tests_section(tests, config.test))
            seconds = time.monotonic() - started
        saved = _save(patch, options.patch_file, display.interactive)
        report = TryReport(start=start, result=result, patch=patch, files=from_git_diff(patch), usage=grant.usage,
                           seconds=seconds, patch_file=saved, patch_shown=options.patch_file is None, kept_tree=kept,
                           critique=critique, tests=tests, test_command=config.test)
        display.finish(report)
    return 0 if patch and not report.stopped and (tests is None or tests.ok) else 1


async def _check_models(settings: MullSettings, options: TryOptions, display: TryDisplay) -> None:
    """The agent's model, and the critique's when it is another, must be there before the run starts."""
    assert settings.llm_base_url is not None
    models = configured_models(settings, critique=options.critique)
    display.phase(f"checking {' and '.join(models)} at {shown_url(settings.llm_base_url)}")
    await check_models(settings, models)


def _agent_name(settings: MullSettings) -> str:
    if settings.agent_command and settings.agent_command.strip():
        return f"the agent `{settings.agent_command.strip().split()[0]}`"
    return "the builtin agent"


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


def _check_patch_target(path: Path) -> None:
    """Refuse a --patch path that cannot be written now, not after the run."""
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ConfigError(f"--patch {path} is a directory: give a file name, e.g. {path / 'mull.patch'}")
    if not folder.is_dir():
        raise ConfigError(f"--patch {path}: the directory {folder} does not exist")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ConfigError(f"--patch {path} cannot be written: choose a path you may write to")


def _save(patch: str, path: Path | None, interactive: bool) -> Path | None:
    """Write the patch to ``path`` (--patch); on a terminal without one, to a file of its own, so the patch
    shown can be applied as it is rather than copied off the screen or made again by another run."""
    if not patch or (path is None and not interactive):
        return None
    if path is None:
        fd, name = tempfile.mkstemp(prefix="mull-try-", suffix=".patch")
        os.close(fd)
        path = Path(name)
    path.write_text(patch)
    return path


def _keep(tree: Path, name: str) -> Path:
    """Move the agent's tree out of the run directory (which is removed) into a directory of its own."""
    kept = Path(tempfile.mkdtemp(prefix="mull-try-kept-")) / name
    try:
        os.rename(tree, kept)
    except OSError:  # another filesystem, or a tree the agent made unwritable: copy what can be read
        shutil.copytree(tree, kept, symlinks=True, dirs_exist_ok=True, ignore_dangling_symlinks=True)
    return kept
