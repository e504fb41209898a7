"""The critique of a pull request head: select diffs within a token budget, ask a critic, render the result.

Flow for the worker: ``diff.from_git_diff`` (or ``from_github_files``) → ``prompt.build_within_budget`` →
``make_critic(...).critique(CritiqueTask(...), budget)`` → ``comment.render_comment`` (or
``render_failure``) and ``review.split_findings`` for inline comments. Nothing here talks to GitHub.
"""

from __future__ import annotations

from worker.critique.run import Critic, CritiqueFailed, CritiqueOk, CritiqueOutcome, CritiqueTask, make_critic

__all__ = ["Critic", "CritiqueFailed", "CritiqueOk", "CritiqueOutcome", "CritiqueTask", "make_critic"]
