"""One root exception type and the diagnostics that compilation reports.

Library code raises :class:`Nb2PipeError` (or a subclass); only the CLI prints it and
chooses the exit code.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Location:
    """Where in a notebook something is. ``cell`` is the 0-based index in the file."""

    notebook: str
    cell: int | None = None
    execution_count: int | None = None
    line: int | None = None

    def describe(self) -> str:
        parts = [self.notebook]
        if self.cell is not None:
            # Humans count cells from 1, markdown cells included, as they scroll.
            cell = f"cell {self.cell + 1}"
            if self.execution_count is not None:
                cell += f" [{self.execution_count}]"
            parts.append(cell)
        if self.line is not None:
            parts.append(f"line {self.line}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Diagnostic:
    code: str
    severity: Severity
    message: str
    location: Location
    hint: str = ""

    def format(self) -> str:
        text = f"{self.location.describe()}: {self.severity.value}[{self.code}]: {self.message}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text

    def to_json(self) -> dict[str, object]:
        return {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "notebook": self.location.notebook,
            "cell": self.location.cell,
            "execution_count": self.location.execution_count,
            "line": self.location.line,
            "hint": self.hint,
        }


def error(code: str, message: str, location: Location, hint: str = "") -> Diagnostic:
    return Diagnostic(code, Severity.ERROR, message, location, hint)


def warning(code: str, message: str, location: Location, hint: str = "") -> Diagnostic:
    return Diagnostic(code, Severity.WARNING, message, location, hint)


class Nb2PipeError(Exception):
    """Root of every error nb2pipe raises on purpose."""

    exit_code = 1


class CompileError(Nb2PipeError):
    """Compilation found problems; all of them are in ``diagnostics``."""

    def __init__(self, diagnostics: tuple[Diagnostic, ...]) -> None:
        self.diagnostics = diagnostics
        errors = [d for d in diagnostics if d.severity is Severity.ERROR]
        #: one line for ``--json``'s error message: the diagnostics carry the details
        self.summary = f"{len(errors)} error{'s' if len(errors) != 1 else ''}; nothing was written"
        super().__init__("\n".join(d.format() for d in diagnostics) + f"\n{self.summary}")
