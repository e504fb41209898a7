"""The CLI critic: run MULL_CRITIQUE_COMMAND on the prompt and read the critique from what it prints.

It sees the tree read-only (``SandboxSpec.writable_tree`` off) and, like every sandboxed command, no
network but the model gateway (OPENAI_BASE_URL, with the run's token as OPENAI_API_KEY and OPENAI_MODEL).
(With MULL_SANDBOX=false nothing stops a CLI from writing; the sandbox is what makes it safe.)
The command prints JSON or Markdown on stdout, or writes it to ``{summary_file}``; JSON that does not
validate gets the command run once more with the validation error appended to the prompt.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

from bot.redaction import scrub
from worker.agent import sandbox
from worker.agent.base import Budget, format_seconds
from worker.agent.command import TemplateError, render
from worker.agent.presets import gateway_env, resolve_preset
from worker.critique.parse import UnusableOutput, from_text
from worker.critique.run import CritiqueFailed, CritiqueOk, CritiqueOutcome, CritiqueTask, failed
from worker.trees.regular_file import NotRegular, read_head

OUTPUT_LIMIT = 200_000  # characters of output kept, bytes of {summary_file} read; a critique is far smaller
ATTEMPTS = 2  # the first answer, and one corrected after being shown the validation error
_RETRY = """

---
Your previous answer could not be used: {error}.
Answer again with only the JSON object described above, corrected."""


class CommandCritic:
    def __init__(self, template: str) -> None:
        _render(template, Path("prompt"), Path("worktree"), Path("summary"))  # fail at startup, not per PR
        self.template = template
        self.preset = resolve_preset(template)
        self.env: dict[str, str] = {}

    async def critique(self, task: CritiqueTask, budget: Budget) -> CritiqueOutcome:
        deadline = time.monotonic() + budget.seconds
        prompt = task.prompt
        for attempt in range(1, ATTEMPTS + 1):
            answer = await self._run(task, prompt, max(deadline - time.monotonic(), 0.1), budget)
            if isinstance(answer, CritiqueFailed):
                return dataclasses.replace(answer, steps=attempt)
            try:
                return CritiqueOk(critique=from_text(answer), steps=attempt, tokens=0)
            except UnusableOutput as exc:
                problem = str(exc)
            prompt = task.prompt + _RETRY.format(error=problem)
        return failed(f"the critique command's output was unusable twice: {problem}", steps=ATTEMPTS)

    async def _run(self, task: CritiqueTask, prompt: str, seconds: float, budget: Budget) -> str | CritiqueFailed:
        """What the command printed (or wrote to ``{summary_file}``), or why there is nothing to read."""
        with tempfile.TemporaryDirectory(prefix="mull-critique-") as scratch:
            folder = Path(scratch)
            prompt_file = folder / "prompt.md"
            prompt_file.write_text(prompt, encoding="utf-8")
            summary_file = folder / "summary.md"
            summary_file.touch()
            if task.model is None:
                raise ValueError("a critique needs its model access (CritiqueTask.model): open a gateway run")
            argv = _render(self.template, prompt_file, task.worktree, summary_file, task.model.model)
            port = sandbox.GATEWAY_PORT if task.sandbox.enabled else sandbox.free_port()
            self.env = gateway_env(self.preset, sandbox.gateway_url(port), task.model.token, task.model.model)
            spec = dataclasses.replace(
                task.sandbox,
                writable_tree=False,
                ro_paths=(*task.sandbox.ro_paths, folder),
                rw_paths=(summary_file,),
                env={**task.sandbox.env, **self.env},
                gateway_socket=task.model.socket,
                gateway_port=port,
            )
            try:
                result = await sandbox.run_argv(argv, task.worktree, spec, seconds, OUTPUT_LIMIT)
            except OSError as exc:
                return failed(f"critique command could not start: {argv[0]}: {exc.strerror or exc}")
            written = _written(summary_file)
        if result.timed_out:
            return failed(f"wall clock ({format_seconds(budget.seconds)} s) ran out")
        if result.exit_code:
            last = (result.output.strip().splitlines()[-1:] or ["no output"])[0][:200]
            return failed(f"critique command exited with code {result.exit_code}: {scrub(self._redact(last))}")
        if written is None:
            return failed(f"the critique command wrote more than {OUTPUT_LIMIT} bytes to its summary file, or "
                          "replaced it; a critique is far smaller")
        return self._redact(written if written.strip() else result.output)

    def _redact(self, text: str) -> str:
        """What the command prints is posted on the pull request; a CLI echoing its API key must not post it."""
        for value in self.env.values():
            if len(value) >= 8:
                text = text.replace(value, "[redacted]")
        return text


def _written(path: Path) -> str | None:
    """The {summary_file}, read no further than OUTPUT_LIMIT bytes; None when it is longer or not a regular file.

    The command could make it huge and sparse (free for it, costly to read whole) or, unconfined, a FIFO.
    """
    try:
        head, more = read_head(path, OUTPUT_LIMIT)
    except (NotRegular, OSError):
        return None
    return None if more else head.decode("utf-8", errors="replace")


def _render(template: str, prompt_file: Path, worktree: Path, summary_file: Path, model: str = "") -> list[str]:
    """command.render, with errors naming the variable the user actually set."""
    try:
        return render(template, prompt_file, worktree, summary_file, model)
    except TemplateError as exc:
        raise TemplateError(str(exc).replace("MULL_AGENT_COMMAND", "MULL_CRITIQUE_COMMAND")) from None
