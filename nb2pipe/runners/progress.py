"""Showing a local run as it happens: a live table on a terminal, plain lines elsewhere."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TextIO

from nb2pipe.runners import state as states
from nb2pipe.runners.state import RunState, StepState


class RunObserver(Protocol):
    """What a local run tells as it goes (the live table below, or nothing)."""

    def on_start(self, run: RunState) -> None: ...

    def on_step(self, run: RunState, step: StepState) -> None: ...

    def tick(self, run: RunState) -> None: ...


class SilentObserver:
    def on_start(self, run: RunState) -> None:
        return None

    def on_step(self, run: RunState, step: StepState) -> None:
        return None

    def tick(self, run: RunState) -> None:
        return None


_STYLES = {
    states.PENDING: "dim",
    states.RUNNING: "bold yellow",
    states.SUCCEEDED: "green",
    states.FAILED: "bold red",
    states.SKIPPED: "dim",
    states.NOT_RUN: "dim",
    states.INTERRUPTED: "magenta",
}


def _seconds(step: StepState) -> str:
    if step.started is None or step.waiting:
        return ""
    end = step.finished if step.finished is not None else time.time()
    return f"{end - step.started:.1f}s"


def _label(step: StepState) -> str:
    if step.status == states.RUNNING and step.waiting:
        return "starting"
    if step.status == states.SUCCEEDED and step.reused:
        return "done (reused)"
    return "done" if step.status == states.SUCCEEDED else step.status


class LiveProgress:
    """A rich table of steps, redrawn by the run loop (no background thread: tasks are
    started with fork, which must not copy a thread that holds the console's lock)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=stream or sys.stderr)
        self.live = Live(console=self.console, auto_refresh=False, transient=False)
        self._last = 0.0

    def on_start(self, run: RunState) -> None:
        self.console.print(f"[bold]run[/bold] {run.run_id}")
        self.live.start()
        self._draw(run)

    def on_step(self, run: RunState, step: StepState) -> None:
        self._draw(run)

    def tick(self, run: RunState) -> None:
        if time.time() - self._last > 0.25:
            self._draw(run)

    def close(self) -> None:
        self.live.stop()

    def _draw(self, run: RunState) -> None:
        from rich.table import Table

        table = Table(show_header=True, header_style="bold", box=None)
        table.add_column("step")
        table.add_column("status")
        table.add_column("time", justify="right")
        for step in run.steps.values():
            style = _STYLES.get(step.status, "")
            table.add_row(step.step, f"[{style}]{_label(step)}[/{style}]", _seconds(step))
        self.live.update(table, refresh=True)
        self._last = time.time()


class LineProgress:
    """One line per change, for logs and pipes."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr

    def on_start(self, run: RunState) -> None:
        print(f"run {run.run_id}: {len(run.steps)} steps", file=self.stream, flush=True)

    def on_step(self, run: RunState, step: StepState) -> None:
        seconds = _seconds(step) if step.status in states.FINISHED and step.started else ""
        timing = f" ({seconds})" if seconds else ""  # a step skipped while waiting never ran
        print(f"  {step.step}: {_label(step)}{timing}", file=self.stream, flush=True)

    def tick(self, run: RunState) -> None:
        return None

    def close(self) -> None:
        return None


def progress_for(stream: Any = None) -> LiveProgress | LineProgress:
    stream = stream or sys.stderr
    return LiveProgress(stream) if getattr(stream, "isatty", lambda: False)() else LineProgress(stream)


@contextmanager
def shown_progress(enabled: bool) -> Iterator[LiveProgress | LineProgress | None]:
    """The run's progress on stderr while the block runs (None when ``enabled`` is false)."""
    progress = progress_for() if enabled else None
    try:
        yield progress
    finally:
        if progress is not None:
            progress.close()


def lifecycle_lines(result: Any) -> list[str]:
    """What a run (a ``RunResult``) registered and what it serves, a line each."""
    lines = []
    for model in result.models:
        verdict = "champion" if model.get("champion") else "candidate, not promoted"
        lines.append(f"registered: models:/{model.get('model_name')}/{model.get('version')} ({verdict})")
    for endpoint in result.endpoints:
        if endpoint.get("deployed"):
            lines.append(f"serving: {endpoint.get('service')} at {endpoint.get('url')} ({endpoint.get('model_uri')})")
        else:
            reason = endpoint.get("reason", "see the deploy step log")
            lines.append(f"not deployed: {endpoint.get('service')}: {reason}")
    return lines
