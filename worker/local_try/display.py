"""How ``mull try`` shows a run: live progress on a terminal, or only the patch and one line when piped.

On a terminal (stdout is one) a rich progress line at the bottom shows what is happening now, the model
requests and tokens so far and the time elapsed, and a line is printed above it for each thing done: each
tool call, file written, command run (with its exit code) and model request. When stdout is a pipe or a
file, nothing is shown while the run goes: the patch goes to stdout, so ``mull try ... > fix.patch`` and
``| git apply`` work, and one line of summary goes to stderr.

Both get their events from the run without being part of it: the agent's ``AgentEvents`` (``AgentTask.events``),
and the model gateway's log (``info("model request", ...)``), which ``mull try`` hands the gateway instead of
its JSON logger. User text (paths, commands, what the model said) is never read as rich markup.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any, Protocol, TextIO

from rich.console import Console, Group
from rich.markdown import Markdown
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.rule import Rule
from rich.text import Text

from worker.agent.events import AgentEvents
from worker.local_try.report import (
    TryReport,
    changes,
    critique_lines,
    file_line,
    one_line,
    tests_tail,
    tests_text,
    usage_text,
)

_DETAIL_CHARS = 100


def _short(text: str, limit: int = _DETAIL_CHARS) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit - 1] + "…"


class TryDisplay(AgentEvents, Protocol):
    def __enter__(self) -> TryDisplay: ...

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...

    def notice(self, text: str, warning: bool = False) -> None:
        """Something the user should know about the run as a whole; a ``warning`` is shown even when piped."""

    def info(self, event: str, **fields: Any) -> None:
        """The model gateway's log: one call per model request (``worker/gateway/exchange.py``)."""

    @property
    def interactive(self) -> bool:
        """Whether someone watches a terminal (who cannot take the patch from stdout)."""

    def finish(self, report: TryReport) -> None:
        """Show the result: the patch (unless it went to a file instead) and the end summary."""


def display_for(stdout: TextIO | None = None, stderr: TextIO | None = None) -> TryDisplay:
    """Live progress when stdout is a terminal; quiet otherwise."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    console = Console(file=out, highlight=False)
    if console.is_terminal:
        return LiveDisplay(console)
    return QuietDisplay(out, err)


class LiveDisplay:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                 TextColumn("{task.fields[usage]}", style="dim"), TimeElapsedColumn(),
                                 console=console, transient=True)
        self.task: TaskID | None = None
        self.interactive = True
        self.now = "starting"
        self.requests = 0
        self.tokens = 0

    def __enter__(self) -> LiveDisplay:
        self.progress.start()
        self.task = self.progress.add_task(self.now, total=None, usage="")
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.progress.stop()

    def _line(self, *parts: str | tuple[str, str]) -> None:
        self.progress.console.print(Text.assemble(*parts), soft_wrap=True)

    def _doing(self, text: str) -> None:
        if self.task is not None:
            self.progress.update(self.task, description=_short(text, 60))

    def phase(self, text: str) -> None:
        self.now = text.split(" (", 1)[0]  # the status line keeps it short; the line printed has it all
        self._doing(self.now)
        self._line(("• ", "bold blue"), text)

    def notice(self, text: str, warning: bool = False) -> None:
        if warning:
            self._line(("! ", "bold yellow"), (text, "yellow"))
        else:
            self._line(("• ", "bold blue"), text)

    def tool_called(self, name: str, detail: str) -> None:
        if name == "run_command":
            self._doing(f"running `{detail}`")  # its line comes when it ends, with the exit code
            return
        self._line(("  → ", "cyan"), (name, "bold"), " ", _short(detail))

    def file_written(self, path: str, created: bool) -> None:
        self._line(("  ✎ ", "green"), path, (" (new)" if created else "", "green"))

    def command_finished(self, command: str, exit_code: int | None, seconds: float) -> None:
        ok = exit_code == 0
        outcome = f"timed out after {seconds:.0f} s" if exit_code is None else f"exit {exit_code} ({seconds:.1f} s)"
        self._line(("  $ ", "magenta"), _short(command), " → ", (outcome, "green" if ok else "red"))
        self._doing(self.now)

    def info(self, event: str, **fields: Any) -> None:
        if event != "model request":
            return
        status = int(fields.get("status") or 0)
        used_in, used_out = int(fields.get("input_tokens") or 0), int(fields.get("output_tokens") or 0)
        self.requests += 1
        self.tokens += used_in + used_out
        if self.task is not None:
            self.progress.update(self.task, usage=f"{self.requests} requests · {self.tokens:,} tokens")
        seconds = float(fields.get("ms") or 0) / 1000
        if status == 200:
            self._line(("  · ", "dim"), (f"model: {used_in:,} in, {used_out:,} out tokens ({seconds:.1f} s)", "dim"))
        elif not fields.get("refused"):
            why = fields.get("error") or f"HTTP {status}"
            self._line(("  ✗ ", "red"), (f"model request failed: {_short(str(why))}", "red"))

    def finish(self, report: TryReport) -> None:
        self.progress.stop()
        console = self.console
        if report.patch and report.patch_shown:
            console.print(_coloured(report.patch), soft_wrap=True)
        console.print(Rule("mull try", style="blue"))
        console.print(_summary(report))


def _coloured(patch: str) -> Text:
    text = Text()
    for line in patch.splitlines(keepends=True):
        if line.startswith(("diff --git", "index ", "--- ", "+++ ", "new file", "deleted file", "similarity",
                            "rename ", "old mode", "new mode", "GIT binary patch")):
            style = "bold"
        elif line.startswith("@@"):
            style = "cyan"
        elif line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        else:
            style = ""
        text.append(line, style=style)
    return text


def _summary(report: TryReport) -> Group:
    result = report.result
    parts: list[Any] = [Text("The agent said:", style="bold"), Markdown(result.summary)]
    if result.not_done:
        parts.append(Text("It could not:", style="bold"))
        parts += [Text(f"  - {item}") for item in result.not_done]
    if report.stopped:
        parts.append(Text(f"It did not finish: {report.stopped}", style="bold red"))
    if report.patch:
        parts.append(Text(changes(report.files).capitalize() + ":", style="bold"))
        parts += [Text(f"  {file_line(diff)}") for diff in report.files]
    else:
        parts.append(Text("The agent changed nothing.", style="bold yellow"))
    if tests_text(report):
        passed = report.tests is not None and report.tests.ok
        parts.append(Text(tests_text(report).capitalize(), style="bold green" if passed else "bold red"))
        parts += [Text(f"  {line}") for line in tests_tail(report)]
    if report.result.blocked:
        parts.append(Text("Refused connections (allow a host with `network.allow` in .github/mull.yml):",
                          style="bold"))
        parts += [Text(f"  {target} × {count}") for target, count in report.result.blocked]
    parts.append(Text.assemble(("Used: ", "bold"), usage_text(report.usage, report.seconds)))
    parts.append(Text.assemble(("Start: ", "bold"), report.start.describe()))
    if report.patch and report.patch_file is not None:
        parts.append(Text.assemble(("Patch: ", "bold"), f"{report.patch_file}; apply it to your checkout with ",
                                   (f"git apply {report.patch_file}", "bold")))
    if report.kept_tree is not None:
        parts.append(Text.assemble(("Tree: ", "bold"), f"kept at {report.kept_tree}"))
    if report.critique is not None:
        lines = critique_lines(report.critique)
        parts.append(Text(lines[0], style="bold"))
        parts += [Text(line) for line in lines[1:]]
    return Group(*parts)


class QuietDisplay:
    """Nothing while the run goes; the patch to stdout, a warning or two and one line of summary to stderr."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out = out
        self.err = err
        self.interactive = False

    def __enter__(self) -> QuietDisplay:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        pass

    def phase(self, text: str) -> None:
        pass

    def notice(self, text: str, warning: bool = False) -> None:
        if warning:
            print(f"mull try: {text}", file=self.err, flush=True)

    def tool_called(self, name: str, detail: str) -> None:
        pass

    def file_written(self, path: str, created: bool) -> None:
        pass

    def command_finished(self, command: str, exit_code: int | None, seconds: float) -> None:
        pass

    def info(self, event: str, **fields: Any) -> None:
        pass

    def finish(self, report: TryReport) -> None:
        if report.patch and report.patch_shown:
            self.out.write(report.patch)
            self.out.flush()
        if report.critique is not None:
            for line in critique_lines(report.critique):
                print(line, file=self.err)
        if tests_tail(report):
            print(f"mull try: the last lines of the test output ({tests_text(report)}):", file=self.err)
            for line in tests_tail(report):
                print(f"  {line}", file=self.err)
        print(one_line(report), file=self.err, flush=True)
