"""A failed step, told the way the notebook shows it: cell, line, the cell's own traceback."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nb2pipe.runtime.step import ERROR_MARKER

_TAIL_LINES = 25


@dataclass(frozen=True)
class StepFailure:
    step: str
    message: str
    traceback: str
    log: str
    notebook: str | None = None
    cell: int | None = None
    execution_count: int | None = None
    line: int | None = None
    error: str | None = None

    def describe(self) -> str:
        if self.cell is None:
            named = self.message.startswith(f"step {self.step!r} ")  # the runner's own messages name the step
            headline = self.message if named else f"step {self.step!r} failed: {self.message}"
            return f"{headline} (see {self.log}):\n{self.traceback}"
        count = f" [{self.execution_count}]" if self.execution_count is not None else ""
        where = f"{self.notebook}, cell {self.cell + 1}{count}, line {self.line}"
        return f"step {self.step!r} failed at {where}:\n{self.traceback}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def failure_from_log(step: str, log: Path, missing: Sequence[str] = ()) -> StepFailure:
    """Read the runtime's failure record from a step log; else keep the log's last lines and
    say which of its ``missing`` outputs the step did not write."""
    lines = _log_lines(log)
    if lines is None:
        return StepFailure(step, _without_outputs(step, missing) or "the step left no log", "", str(log))
    for line in reversed(lines):
        # kfp.local prefixes the step's output lines; the marker may not start the line
        if ERROR_MARKER in line:
            record = json.loads(line.split(ERROR_MARKER, 1)[1])
            return StepFailure(
                step=step,
                message=record["message"],
                traceback=record.get("traceback", ""),
                log=str(log),
                notebook=record["notebook"],
                cell=record["cell"],
                execution_count=record["execution_count"],
                line=record["line"],
                error=record["error"],
            )
    tail = "\n".join(lines[-_TAIL_LINES:])
    message = _without_outputs(step, missing) or "the step failed outside the notebook's code"
    return StepFailure(step, message, tail, str(log))


def timed_out(step: str, seconds: int, log: Path) -> StepFailure:
    """A step stopped by the runner after its ``timeout:`` tag's seconds."""
    tail = "\n".join((_log_lines(log) or [])[-_TAIL_LINES:])
    return StepFailure(step, f"step {step!r} timed out after {seconds} s and was stopped", tail, str(log))


def _without_outputs(step: str, missing: Sequence[str]) -> str:
    return f"step {step!r} ended without writing its outputs {', '.join(missing)}" if missing else ""


def _log_lines(log: Path) -> list[str] | None:
    try:
        return log.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return None
