"""What the planner knows while it walks a notebook: every analysed cell, the problems found
so far, and per step the values it takes in, hands on and logs."""

from __future__ import annotations

from dataclasses import dataclass, field

from nb2pipe.analysis.dataflow import AnalyzedCell
from nb2pipe.analysis.names import analyze_code
from nb2pipe.errors import Diagnostic, error, warning
from nb2pipe.ir import ArtifactKind, Cell, CodeBlock, Layout, StepSpec


@dataclass
class Flow:
    """One step as the planner walks the notebook: its analysed cells and the values it takes
    in, hands on and logs."""

    spec: StepSpec
    cells: tuple[AnalyzedCell, ...]
    packages: list[str]
    artifact_inputs: dict[str, str] = field(default_factory=dict)
    parameter_inputs: set[str] = field(default_factory=set)
    replays: dict[tuple[int, int], CodeBlock] = field(default_factory=dict)
    outputs: dict[str, ArtifactKind] = field(default_factory=dict)
    metrics: list[str] = field(default_factory=list)
    finals: list[str] = field(default_factory=list)
    prelude_reads: set[str] = field(default_factory=set)


@dataclass
class Planner:
    """The notebook's analysed cells and the problems found so far."""

    layout: Layout
    diagnostics: list[Diagnostic]
    analyzed: dict[int, AnalyzedCell] = field(default_factory=dict)
    packages: dict[int, tuple[str, ...]] = field(default_factory=dict)
    syntax_errors: bool = False
    star_import: bool = False
    #: names that refused parameter lines assign: defined all the same, so that the
    #: invalid-parameter error is the only one about them
    refused_parameters: set[str] = field(default_factory=set)
    #: sub-pipeline task -> the values this notebook's steps read from it, with their kinds
    composed: dict[str, dict[str, ArtifactKind]] = field(default_factory=dict)

    @property
    def notebook(self) -> str:
        return self.layout.notebook.path

    def analyze(self, cell: Cell, report: bool = True) -> AnalyzedCell | None:
        if cell.index in self.analyzed:
            return self.analyzed[cell.index]
        try:
            clean, facts = analyze_code(cell.source)
        except SyntaxError as exc:  # too deeply nested code included (see magics.parse_code)
            if report:
                self.syntax_error(cell, exc)
            return None
        if report:
            for note in clean.notes:
                self.diagnostics.append(
                    warning(note.code, note.message, cell.location(self.notebook, note.line), note.hint)
                )
        analyzed = AnalyzedCell(cell, CodeBlock(cell.index, cell.execution_count, 1, clean.source), facts)
        self.analyzed[cell.index] = analyzed
        self.packages[cell.index] = clean.packages
        self.star_import = self.star_import or facts.star_import
        return analyzed

    def syntax_error(self, cell: Cell, exc: SyntaxError) -> None:
        self.syntax_errors = True
        self.diagnostics.append(
            error(
                "syntax-error",
                exc.msg or "invalid syntax",
                cell.location(self.notebook, exc.lineno),
                "fix the code, or tag the cell skip to leave it out of the pipeline",
            )
        )

    def analyze_all(self, cells: tuple[Cell, ...]) -> tuple[AnalyzedCell, ...]:
        found = (self.analyze(cell) for cell in cells)
        return tuple(analyzed for analyzed in found if analyzed is not None)
