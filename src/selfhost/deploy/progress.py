"""Showing a deploy as it happens: a live bar on a terminal, plain lines otherwise.

Both reporters get the parsed events, in order, and pass every line through the
run's :class:`Redactor` before it is shown. Per host and per task they show what
changed or failed; the plain reporter (logs, CI) also shows what was already ok.
"""

from __future__ import annotations

from typing import IO, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from selfhost.deploy.events import Event, HostStats
from selfhost.deploy.redact import Redactor

_STYLE = {"ok": "green", "changed": "yellow", "failed": "bold red",
          "unreachable": "bold red", "ignored": "magenta", "skipped": "dim"}


class Reporter(Protocol):
    def event(self, event: Event) -> None: ...

    def close(self) -> None: ...


class PlainReporter:
    """One line per play, per task result (skips left out) and per output line."""

    def __init__(self, stream: IO[str], redactor: Redactor) -> None:
        self._stream = stream
        self._redact = redactor.redact

    def _say(self, line: str) -> None:
        self._stream.write(self._redact(line) + "\n")
        self._stream.flush()

    def event(self, event: Event) -> None:
        if event.kind == "play":
            self._say(f"PLAY {event.task}")
        elif event.kind == "result" and event.outcome != "skipped":
            detail = f": {event.message}" if event.message else ""
            self._say(f"{event.outcome:<11} {event.host:<16} {event.task}{detail}")
            if event.diff:
                self._say(event.diff)

    def close(self) -> None:
        self._stream.flush()


class RichReporter:
    """A live bar counting tasks, with changes and failures printed above it."""

    def __init__(self, console: Console, redactor: Redactor) -> None:
        self._console = console
        self._redact = redactor.redact
        self._progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
            TextColumn("{task.completed} tasks"), TimeElapsedColumn(),
            console=console, transient=True,
        )
        self._bar: TaskID = self._progress.add_task("starting", total=None)
        self._progress.start()

    def event(self, event: Event) -> None:
        if event.kind == "task":
            self._progress.update(self._bar, description=self._redact(event.task))
            self._progress.advance(self._bar)
        elif event.kind == "play":
            self._console.print(Text(self._redact(f"PLAY {event.task}"), style="bold"))
        elif event.kind == "result" and event.outcome in ("changed", "failed", "unreachable",
                                                          "ignored"):
            line = Text(f"{event.outcome:<11} ", style=_STYLE[event.outcome])
            line.append(self._redact(f"{event.host:<16} {event.task}"))
            if event.message:
                line.append(self._redact(f": {event.message}"), style=_STYLE[event.outcome])
            self._console.print(line)
            if event.diff:
                self._console.print(Text(self._redact(event.diff), style="dim"))

    def close(self) -> None:
        self._progress.stop()


def reporter_for(stream: IO[str], redactor: Redactor, *, terminal: bool | None = None
                 ) -> Reporter:
    """A :class:`RichReporter` when ``stream`` is a terminal, else a :class:`PlainReporter`."""
    is_tty = stream.isatty() if terminal is None else terminal
    if is_tty:
        return RichReporter(Console(file=stream), redactor)
    return PlainReporter(stream, redactor)


def summary_table(stats: dict[str, HostStats], seconds: float, *, check: bool) -> Table:
    """ok / changed / failed / unreachable / skipped per host, and the run's time."""
    title = f"{'dry run' if check else 'deploy'} finished in {seconds:.1f} s"
    table = Table(title=title, title_justify="left")
    table.add_column("host")
    for column in ("ok", "changed", "failed", "unreachable", "skipped"):
        table.add_column(column, justify="right")
    for host in sorted(stats):
        s = stats[host]
        table.add_row(host, str(s.ok), str(s.changed), str(s.failed), str(s.unreachable),
                      str(s.skipped))
    return table
