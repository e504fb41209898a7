"""``mull try --critique``: the critique Mull would post on the pull request, run on the local result.

The critic gets what ``critique_job`` gives it on GitHub: the change as ``git diff`` (``GIT_DIFF_ARGS``) from
the start to the agent's commit, a prompt within the critique's token budget, a plain tree of that commit
to read, the start's instruction files (a change must not steer its own critic), and a gateway run of its
own with the critique's model and budgets.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from bot.settings import MullSettings
from worker.agent.base import ModelAccess
from worker.critique.diff import GIT_DIFF_ARGS, from_git_diff
from worker.critique.prompt import build_within_budget
from worker.critique.run import CritiqueOutcome, CritiqueTask, make_critic
from worker.gateway import ModelGateway
from worker.jobs.branch_work import new_run_id, sandbox_for
from worker.trees.git_process import git
from worker.trees.run_tree import open_run_tree


async def critique_change(settings: MullSettings, gateway: ModelGateway, mirror: Path, runs: Path, name: str,
                          base: str, head: str, title: str, description: str,
                          instructions: Mapping[str, str], tests: str = "") -> CritiqueOutcome:
    """The critique of ``base..head`` in ``mirror``, described as a pull request ``title``/``description``;
    ``tests``: what Mull's own test run of ``head`` found (``worker/critique/tests_section.py``)."""
    from worker.jobs.critique import critique_budget  # the worker's own budget, read from the same settings

    files = from_git_diff(await git(*GIT_DIFF_ARGS, base, head, git_dir=mirror))
    prompt, _selection = build_within_budget(name, 0, title, description, files, instructions,
                                             budget_tokens=settings.critique_prompt_tokens, extra=tests)
    critic = make_critic(settings.critique_command, settings.llm_base_url or "")
    budget = critique_budget(settings)
    model = settings.critique_model or settings.llm_model or ""
    async with open_run_tree(runs, mirror, "try-critique", head) as run, \
            gateway.run(new_run_id("critique", 0, name), model, budget.steps, budget.tokens) as grant:
        return await critic.critique(CritiqueTask(prompt=prompt, worktree=run.tree, files=files,
                                                  sandbox=sandbox_for(settings, run),
                                                  model=ModelAccess(gateway.socket_path, grant)), budget)
