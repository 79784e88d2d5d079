"""Layout + code analysis -> :class:`~nb2pipe.ir.PipelinePlan`.

Collects every problem before raising, so one compile reports them all.
"""

from __future__ import annotations

import difflib
import itertools
from dataclasses import dataclass, field, replace

from nb2pipe.analysis.dataflow import (
    PARAMETER,
    PRELUDE,
    AnalyzedCell,
    Binding,
    Read,
    Simulator,
    is_notebook_builtin,
    merge_imports,
)
from nb2pipe.analysis.graph import find_cycle, topological_order
from nb2pipe.analysis.kinds import Provenance
from nb2pipe.analysis.magics import strip_magics
from nb2pipe.analysis.names import Origin, analyze_cell
from nb2pipe.analysis.parameters import parse_metrics, parse_parameters
from nb2pipe.analysis.prelude import PreludeUnit, imported_modules, prelude_for, prelude_units
from nb2pipe.errors import CompileError, Diagnostic, Location, Severity, error, warning
from nb2pipe.ir import (
    ArtifactKind,
    Cell,
    CodeBlock,
    Layout,
    Parameter,
    PipelinePlan,
    Step,
    StepInput,
    StepOutput,
    StepSpec,
)
from nb2pipe.plan_lifecycle import PendingRegistration, snapshot, wire
from nb2pipe.plan_monitoring import PendingDrift, drift_snapshot, wire_drift

METRICS_OUTPUT = "nb2pipe_metrics"
REPORT_OUTPUT = "nb2pipe_report"
#: outputs of the register and deploy tasks (nb2pipe.emit.lifecycle)
REGISTERED_OUTPUT = "registered_model"
PROMOTION_OUTPUT = "promotion"
DEPLOYMENT_OUTPUT = "deployment"
#: outputs of the drift and explain tasks (nb2pipe.emit.monitoring)
DRIFT_FLAG_OUTPUT = "is_drift"
DRIFT_METRICS_OUTPUT = "drift_metrics"
DRIFT_REPORT_OUTPUT = "drift_report"
EXPLANATION_OUTPUT = "explanation"
EXPLAIN_METRICS_OUTPUT = "explain_metrics"
#: the monitoring pipeline's gate: its verdict, and the parameters it reads
RETRAIN_OUTPUT = "retrain"


@dataclass
class _Flow:
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
class _Planner:
    layout: Layout
    diagnostics: list[Diagnostic]
    analyzed: dict[int, AnalyzedCell] = field(default_factory=dict)
    packages: dict[int, tuple[str, ...]] = field(default_factory=dict)
    syntax_errors: bool = False
    star_import: bool = False

    @property
    def notebook(self) -> str:
        return self.layout.notebook.path

    def analyze(self, cell: Cell, report: bool = True) -> AnalyzedCell | None:
        if cell.index in self.analyzed:
            return self.analyzed[cell.index]
        clean = strip_magics(cell.source)
        try:
            facts = analyze_cell(clean.source)
        except SyntaxError as exc:
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


def build_plan(layout: Layout, diagnostics: list[Diagnostic]) -> PipelinePlan:
    """Analyse the layout's code; raise :class:`CompileError` with every problem found."""
    planner = _Planner(layout, list(diagnostics))
    if not layout.steps:
        planner.diagnostics.append(
            error(
                "no-steps",
                "the notebook has no code for any step",
                Location(planner.notebook),
                "add code cells; tag the first cell of each step step:NAME (a notebook without tags is one step)",
            )
        )
    prelude = planner.analyze_all(layout.prelude)
    flows = {spec.name: _Flow(spec, planner.analyze_all(spec.cells), []) for spec in layout.steps}
    for flow in flows.values():
        flow.packages = [pkg for a in (*prelude, *flow.cells) for pkg in planner.packages[a.cell.index]]
    parameters = _parameters(planner)
    imports = merge_imports([*prelude, *(a for flow in flows.values() for a in flow.cells)])

    known: dict[str, Binding] = {
        p.name: Binding(PARAMETER, Origin("literal", attr=p.type), Provenance("Artifact"), p.location)
        for p in parameters
    }
    prelude_result = Simulator(PRELUDE, planner.notebook, known, imports).run(prelude)
    for read in prelude_result.reads.values():
        if read.strong and read.name not in known and not _provided_anyway(planner, read.name):
            planner.diagnostics.append(
                error(
                    "undefined-name",
                    f"the prelude uses {read.name!r}, which is not defined before it",
                    read.location,
                    "imports and functions cells run first in every step; import it there",
                )
            )
    known.update(prelude_result.bindings)

    registrations: list[PendingRegistration] = []
    drift_checks: list[PendingDrift] = []
    for item in _in_notebook_order(layout, flows):
        if isinstance(item, Cell):
            _resolve_metrics(planner, item, known, flows)
            continue
        flow = item
        result = Simulator(flow.spec.name, planner.notebook, known, imports).run(flow.cells)
        for read in sorted(result.reads.values(), key=lambda r: r.name):
            _resolve_read(planner, flow, read, known.get(read.name), flows)
        known.update(result.bindings)
        pending = snapshot(flow.spec, flow.cells, result.bindings, known, planner.diagnostics)
        if pending is not None:
            registrations.append(pending)
        drift_checks += drift_snapshot(flow.spec, known, planner.diagnostics)
        for name, where in result.deleted.items():
            known[name] = Binding(flow.spec.name, Origin("unknown"), Provenance("Artifact"), where, deleted=True)

    for name, binding in known.items():
        # a leading underscore marks a throwaway (`_`, `_tmp`), not a result
        if binding.provider in flows and not binding.deleted and binding.replay is None and name[0] != "_":
            flows[binding.provider].finals.append(name)
    outputs = {name: flow.outputs for name, flow in flows.items()}
    taken = set(flows)
    lifecycle = wire(
        registrations,
        outputs,
        [name for name, flow in flows.items() if flow.metrics],
        [p.name for p in parameters],
        taken,
        planner.diagnostics,
    )
    drift = wire_drift(drift_checks, lifecycle, outputs, layout.settings.drift, taken, planner.diagnostics)
    units = prelude_units(a.code for a in prelude)
    steps = _steps(planner, flows, {p.name: p for p in parameters}, units)
    errors = [d for d in planner.diagnostics if d.severity is Severity.ERROR]
    if errors:
        raise CompileError(tuple(sorted(planner.diagnostics, key=_reading_order)))
    order = topological_order([s.name for s in steps], {s.name: s.upstream for s in steps})
    by_name = {s.name: s for s in steps}
    return PipelinePlan(
        name=layout.settings.name,
        description=layout.settings.description,
        notebook=layout.notebook.name,
        parameters=tuple(parameters),
        prelude=tuple(a.code for a in prelude),
        steps=tuple(by_name[name] for name in order),
        image=layout.settings.image,
        experiment=layout.settings.experiment,
        warnings=tuple(sorted(planner.diagnostics, key=_reading_order)),
        modules=imported_modules([*(a.code for a in prelude), *(a.code for f in flows.values() for a in f.cells)]),
        lifecycle=lifecycle,
        drift=drift,
        drift_options=layout.settings.drift,
        kfp_host=layout.settings.kfp_host,
        mlflow_tracking_uri=layout.settings.mlflow_tracking_uri,
    )


def _reading_order(diagnostic: Diagnostic) -> tuple[int, int]:
    where = diagnostic.location
    return (-1 if where.cell is None else where.cell, where.line or 0)


def _provided_anyway(planner: _Planner, name: str) -> bool:
    return is_notebook_builtin(name) or planner.star_import


def _parameters(planner: _Planner) -> list[Parameter]:
    found: dict[str, Parameter] = {}
    for cell in planner.layout.parameters:
        where = cell.location(planner.notebook)
        try:
            parameters, problems = parse_parameters(strip_magics(cell.source).source, where)
        except SyntaxError as exc:
            planner.syntax_error(cell, exc)
            continue
        planner.diagnostics.extend(problems)
        found.update((p.name, p) for p in parameters)
    return list(found.values())


def _in_notebook_order(layout: Layout, flows: dict[str, _Flow]) -> list[Cell | _Flow]:
    """Steps and metrics cells in the order a top-to-bottom run meets them."""
    items: list[tuple[int, Cell | _Flow]] = [(cell.index, cell) for cell in layout.metrics]
    items += [(flow.spec.cells[0].index if flow.spec.cells else -1, flow) for flow in flows.values()]
    return [item for _, item in sorted(items, key=lambda entry: entry[0])]


def _resolve_read(planner: _Planner, flow: _Flow, read: Read, binding: Binding | None, flows: dict[str, _Flow]) -> None:
    name = read.name
    if binding is None or binding.deleted:
        if read.strong and not _provided_anyway(planner, name) and not planner.syntax_errors:
            planner.diagnostics.append(
                error(
                    "undefined-name",
                    f"step {flow.spec.name!r} uses {name!r}, which nothing above it defines",
                    read.location,
                    _undefined_hint(planner, name, binding, flow),
                )
            )
        return
    if binding.provider == PARAMETER:
        flow.parameter_inputs.add(name)
    elif binding.provider == PRELUDE:
        flow.prelude_reads.add(name)
    elif binding.replay is not None:
        flow.replays[(binding.replay.cell, binding.replay.first_line)] = binding.replay
    else:
        reason = binding.provenance.unserializable
        if reason:
            planner.diagnostics.append(
                error(
                    "unserializable-value",
                    f"{name!r} is {reason} made in step {binding.provider!r} ({binding.location.describe()}); "
                    f"it cannot be passed to step {flow.spec.name!r}",
                    read.location,
                    f"create {name!r} inside step {flow.spec.name!r}, or pass what it is made from "
                    "(a path, the data) instead",
                )
            )
            return
        flow.artifact_inputs[name] = binding.provider
        flows[binding.provider].outputs[name] = binding.provenance.kind


def _resolve_metrics(planner: _Planner, cell: Cell, known: dict[str, Binding], flows: dict[str, _Flow]) -> None:
    where = cell.location(planner.notebook)
    try:
        names, problems = parse_metrics(strip_magics(cell.source).source, where)
    except SyntaxError as exc:
        planner.syntax_error(cell, exc)
        return
    planner.diagnostics.extend(problems)
    for metric in names:
        binding = known.get(metric.name)
        at = cell.location(planner.notebook, metric.line)
        if binding is None or binding.deleted or binding.provider in (PARAMETER, PRELUDE) or binding.replay:
            planner.diagnostics.append(
                error(
                    "undefined-metric",
                    f"metric {metric.name!r} is not computed by any step above this cell",
                    at,
                    "metrics name values that a step computes, e.g. accuracy = model.score(X, y)",
                )
            )
        elif metric.name not in flows[binding.provider].metrics:
            flows[binding.provider].metrics.append(metric.name)


def _undefined_hint(planner: _Planner, name: str, binding: Binding | None, flow: _Flow) -> str:
    if binding is not None and binding.deleted:
        return f"step {binding.provider!r} deletes it ({binding.location.describe()})"
    layout = planner.layout
    for cell in (*layout.skipped, *layout.unassigned):
        analyzed = planner.analyze(cell, report=False)
        if analyzed and any(e.kind == "bind" and e.name == name for e in analyzed.facts.events):
            why = "is tagged skip" if cell in layout.skipped else "belongs to no step"
            return f"it is defined in cell {cell.index + 1}, which {why}; tag that cell imports or step:NAME"
    for spec in layout.steps:
        if spec.name == flow.spec.name or not spec.cells or spec.cells[0].index < flow.spec.cells[0].index:
            continue
        for cell in spec.cells:
            analyzed = planner.analyzed.get(cell.index)
            if analyzed and any(e.kind == "bind" and e.name == name for e in analyzed.facts.events):
                return (
                    f"step {spec.name!r} defines it further down (cell {cell.index + 1}); "
                    "a step can only use values from the steps above it"
                )
    close = difflib.get_close_matches(name, _all_bound_names(planner), n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    return "define it in an earlier step, an imports cell, or the parameters cell"


def _all_bound_names(planner: _Planner) -> list[str]:
    names = {e.name for a in planner.analyzed.values() for e in a.facts.events if e.kind == "bind"}
    return sorted(names)


def _steps(
    planner: _Planner, flows: dict[str, _Flow], parameters: dict[str, Parameter], prelude: list[PreludeUnit]
) -> list[Step]:
    names = list(flows)
    upstream: dict[str, list[str]] = {}
    after_at: dict[tuple[str, str], Location] = {}
    for name, flow in flows.items():
        explicit: list[str] = []
        for target, where in flow.spec.after:
            if target not in flows:
                close = difflib.get_close_matches(target, names, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"steps are: {', '.join(names)}"
                planner.diagnostics.append(error("unknown-step", f"after:{target} names no step", where, hint))
            elif target == name:
                planner.diagnostics.append(
                    error("cycle", f"step {name!r} is tagged to run after itself", where, "remove the after: tag")
                )
            elif target not in explicit:
                explicit.append(target)
                after_at[(name, target)] = where
        upstream[name] = sorted(set(explicit) | set(flow.artifact_inputs.values()))
    cycle = find_cycle(names, upstream)
    if cycle:
        where = next(
            (after_at[(a, b)] for a, b in itertools.pairwise(cycle) if (a, b) in after_at),
            flows[cycle[0]].spec.location,
        )
        planner.diagnostics.append(
            error(
                "cycle",
                "steps depend on each other in a cycle: " + " -> ".join(f"{s!r}" for s in cycle),
                where,
                "each arrow is an after:/prev: tag or data the step uses; remove an after: tag",
            )
        )
    return [
        _step(flow, upstream[name], flows, parameters, prelude_for(prelude, flow.prelude_reads))
        for name, flow in flows.items()
    ]


def _step(
    flow: _Flow,
    upstream: list[str],
    flows: dict[str, _Flow],
    parameters: dict[str, Parameter],
    prelude: tuple[CodeBlock, ...],
) -> Step:
    outputs = tuple(StepOutput(name, name, flow.outputs[name]) for name in sorted(flow.outputs))
    taken = set(flow.outputs) | set(flow.artifact_inputs) | flow.parameter_inputs | {METRICS_OUTPUT}
    inputs: list[StepInput] = []
    for name in sorted(flow.parameter_inputs | set(flow.artifact_inputs)):
        arg = name
        if name in flow.outputs:  # one function argument per name: the incoming value gets a suffix
            arg = _unique(f"{name}_in", taken)
            taken.add(arg)
        if name in flow.parameter_inputs:
            inputs.append(StepInput(name, arg, None, None, parameter_type=parameters[name].type))
        else:
            producer = flow.artifact_inputs[name]
            inputs.append(StepInput(name, arg, producer, name, kind=flows[producer].outputs[name]))
    spec = flow.spec
    options = spec.options
    packages = tuple(dict.fromkeys([*options.packages, *flow.packages]))
    return Step(
        name=spec.name,
        cells=tuple(a.code for a in flow.cells),
        replays=tuple(flow.replays[key] for key in sorted(flow.replays)),
        inputs=tuple(inputs),
        outputs=outputs,
        metrics=tuple(flow.metrics),
        after=tuple(dict.fromkeys(t for t, _ in spec.after if t != spec.name and t in flows)),
        upstream=tuple(upstream),
        options=replace(options, packages=packages),
        location=spec.location,
        finals=tuple(sorted(flow.finals)),
        prelude=prelude,
    )


def _unique(name: str, taken: set[str]) -> str:
    candidate, counter = name, 2
    while candidate in taken:
        candidate = f"{name}{counter}"
        counter += 1
    return candidate
