"""Layout + code analysis -> :class:`~nb2pipe.ir.PipelinePlan`.

Collects every problem before raising, so one compile reports them all.
"""

from __future__ import annotations

import difflib
import itertools
from dataclasses import replace

from nb2pipe.analysis.dataflow import (
    PARAMETER,
    PRELUDE,
    Binding,
    Read,
    Simulator,
    is_notebook_builtin,
    merge_imports,
)
from nb2pipe.analysis.graph import find_cycle, topological_order
from nb2pipe.analysis.kinds import Provenance
from nb2pipe.analysis.magics import strip_magics
from nb2pipe.analysis.origins import Origin
from nb2pipe.analysis.parameters import parse_parameters
from nb2pipe.analysis.prelude import PreludeUnit, modules_of, prelude_for, prelude_units
from nb2pipe.errors import CompileError, Diagnostic, Location, Severity, error
from nb2pipe.identifiers import is_kfp_identifier, kfp_identifier
from nb2pipe.ir import (
    DEPLOYMENT_OUTPUT,
    DRIFT_FLAG_OUTPUT,
    DRIFT_METRICS_OUTPUT,
    DRIFT_REPORT_OUTPUT,
    EXPLAIN_METRICS_OUTPUT,
    EXPLANATION_OUTPUT,
    FORCE_PARAMETER,
    METRICS_OUTPUT,
    PAYLOADS_PARAMETER,
    PROMOTION_OUTPUT,
    REGISTERED_OUTPUT,
    REPORT_OUTPUT,
    RETRAIN_OUTPUT,
    ArtifactKind,
    Cell,
    CodeBlock,
    Layout,
    NotebookRef,
    Parameter,
    PipelinePlan,
    Step,
    StepInput,
    StepOutput,
)
from nb2pipe.plan.arguments import ArgumentNames, argument_names, keyed
from nb2pipe.plan.compose import Child, Composer, bind_child, load_children, subpipelines
from nb2pipe.plan.lifecycle import PendingRegistration, snapshot, wire
from nb2pipe.plan.metrics import resolve_metrics
from nb2pipe.plan.monitoring import PendingDrift, drift_snapshot, wire_drift
from nb2pipe.plan.state import Flow, Planner
from nb2pipe.plan.volumes import volume_diagnostics


def build_plan(layout: Layout, diagnostics: list[Diagnostic], composer: Composer | None = None) -> PipelinePlan:
    """Analyse the layout's code; raise :class:`CompileError` with every problem found.
    ``composer`` reads the notebooks its ``notebook:`` cells name (see :mod:`nb2pipe.plan.compose`)."""
    return plan_with_exports(layout, diagnostics, composer or Composer(), frozenset())[0]


def plan_with_exports(
    layout: Layout, diagnostics: list[Diagnostic], composer: Composer, exports: frozenset[str] | None
) -> tuple[PipelinePlan, dict[str, Binding]]:
    """:func:`build_plan`, its steps also handing on ``exports`` (``None``: every value they
    leave defined that can leave its process), which a parent notebook reads; returns the
    plan and what each exported name is bound to."""
    planner = Planner(layout, list(diagnostics))
    if not layout.steps and not layout.notebooks:
        planner.diagnostics.append(
            error(
                "no-steps",
                "the notebook has no code for any step",
                Location(planner.notebook),
                "add code cells; tag the first cell of each step step:NAME (a notebook without tags is one step)",
            )
        )
    prelude = planner.analyze_all(layout.prelude)
    flows = {spec.name: Flow(spec, planner.analyze_all(spec.cells), []) for spec in layout.steps}
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

    children = load_children(layout, composer, set(flows), plan_with_exports, planner.diagnostics)
    planner.composed = {child.task: child.consumed for child in children.values()}
    registrations: list[PendingRegistration] = []
    drift_checks: list[PendingDrift] = []
    for item in _in_notebook_order(layout, flows):
        if isinstance(item, NotebookRef):
            if item.cell.index in children:
                bind_child(children[item.cell.index], known, {p.name: p for p in parameters}, planner.diagnostics)
            continue
        if isinstance(item, Cell):
            resolve_metrics(planner, item, known, flows)
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
    exported = _exported(known, flows, exports)
    outputs = {name: flow.outputs for name, flow in flows.items()} | planner.composed
    taken = set(flows) | set(planner.composed)
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
    planner.diagnostics.extend(volume_diagnostics(steps))
    errors = [d for d in planner.diagnostics if d.severity is Severity.ERROR]
    if errors:
        raise CompileError(tuple(sorted(planner.diagnostics, key=_reading_order)))
    composed_keys = _composed_keys(children)
    composed, child_warnings = subpipelines(
        children, composed_keys, composer.inside(layout.notebook.path), plan_with_exports
    )
    # the register, explain and drift tasks read step outputs under their KFP names

    def key(item: StepInput) -> StepInput:
        if item.source_step in composed_keys:  # a value a sub-pipeline hands back
            return replace(item, source_output=composed_keys[item.source_step][item.name])
        return keyed(item, steps)

    lifecycle = tuple(
        replace(task, model=key(task.model), example=task.example and key(task.example)) for task in lifecycle
    )
    drift = tuple(replace(task, current=key(task.current), reference=key(task.reference)) for task in drift)
    order = topological_order([s.name for s in steps] + list(planner.composed), {s.name: s.upstream for s in steps})
    by_name = {s.name: s for s in steps}
    modules = modules_of(a.facts for a in [*prelude, *(a for f in flows.values() for a in f.cells)])
    plan = PipelinePlan(
        name=layout.settings.name,
        description=layout.settings.description,
        notebook=layout.notebook.name,
        parameters=tuple(parameters),
        prelude=tuple(a.code for a in prelude),
        steps=tuple(by_name[name] for name in order if name in by_name),
        image=layout.settings.image,
        experiment=layout.settings.experiment,
        warnings=tuple(sorted(planner.diagnostics, key=_reading_order)) + tuple(child_warnings),
        modules=tuple(sorted({*modules, *(m for sub in composed for m in sub.plan.modules)})),
        lifecycle=lifecycle,
        drift=drift,
        drift_options=layout.settings.drift,
        kfp_host=layout.settings.kfp_host,
        package_index=layout.settings.package_index,
        workspace=layout.settings.workspace,
        timeout_seconds=layout.settings.timeout_seconds,
        mlflow_tracking_uri=layout.settings.mlflow_tracking_uri,
        subpipelines=composed,
    )
    return plan, exported


def _exported(known: dict[str, Binding], flows: dict[str, Flow], exports: frozenset[str] | None) -> dict[str, Binding]:
    """The values a parent notebook may read, their producing steps made to hand them on."""
    exported: dict[str, Binding] = {}
    for name, binding in known.items():
        if exports is not None and name not in exports:
            continue
        if binding.provider not in flows or binding.deleted or binding.replay is not None or name[0] == "_":
            continue
        if binding.provenance.unserializable:
            continue
        flows[binding.provider].outputs[name] = binding.provenance.kind
        exported[name] = binding
    return exported


def _composed_keys(children: dict[int, Child]) -> dict[str, dict[str, str]]:
    """What the sub-pipelines' outputs are called in KFP, by task and notebook name."""
    return {child.task: argument_names(child.consumed, (), _OWN_ARGUMENTS).outputs for child in children.values()}


def _reading_order(diagnostic: Diagnostic) -> tuple[int, int]:
    where = diagnostic.location
    return (-1 if where.cell is None else where.cell, where.line or 0)


def _provided_anyway(planner: Planner, name: str) -> bool:
    return is_notebook_builtin(name) or planner.star_import or name in planner.refused_parameters


def _parameters(planner: Planner) -> list[Parameter]:
    found: dict[str, Parameter] = {}
    for cell in planner.layout.parameters:
        where = cell.location(planner.notebook)
        try:
            parsed = parse_parameters(strip_magics(cell.source).source, where)
        except SyntaxError as exc:
            planner.syntax_error(cell, exc)
            continue
        planner.diagnostics.extend(parsed.problems)
        planner.refused_parameters |= parsed.refused
        found.update((p.name, p) for p in parsed.parameters)
    return _pipeline_inputs(list(found.values()))


def _pipeline_inputs(parameters: list[Parameter]) -> list[Parameter]:
    """Parameters whose names KFP refuses (``_seed``, ``größe``) get a pipeline input name
    that it accepts; valid names keep theirs, and no renamed one takes a name of the
    monitoring pipeline's own inputs (that clash is reported as reserved-parameter)."""
    taken = {p.name for p in parameters if is_kfp_identifier(p.name)}
    taken |= {PAYLOADS_PARAMETER, FORCE_PARAMETER}
    return [
        p if is_kfp_identifier(p.name) else replace(p, input_name=kfp_identifier(p.name, taken)) for p in parameters
    ]


def _in_notebook_order(layout: Layout, flows: dict[str, Flow]) -> list[Cell | Flow | NotebookRef]:
    """Steps, metrics and notebook: cells in the order a top-to-bottom run meets them."""
    items: list[tuple[int, Cell | Flow | NotebookRef]] = [(cell.index, cell) for cell in layout.metrics]
    items += [(ref.cell.index, ref) for ref in layout.notebooks]
    items += [(flow.spec.cells[0].index if flow.spec.cells else -1, flow) for flow in flows.values()]
    return [item for _, item in sorted(items, key=lambda entry: entry[0])]


def _resolve_read(planner: Planner, flow: Flow, read: Read, binding: Binding | None, flows: dict[str, Flow]) -> None:
    name = read.name
    if binding is None or binding.deleted:
        if read.strong and not _provided_anyway(planner, name) and not planner.syntax_errors:
            planner.diagnostics.append(
                error(
                    "undefined-name",
                    f"step {flow.spec.name!r} uses {name!r}, which nothing above it defines",
                    read.location,
                    _undefined_hint(planner, name, binding, flow, read.location),
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
            instead = binding.provenance.instead or "pass what it is made from (a path, the data) instead"
            planner.diagnostics.append(
                error(
                    "unserializable-value",
                    f"{name!r} is {reason} made in step {binding.provider!r} ({binding.location.describe()}); "
                    f"it cannot be passed to step {flow.spec.name!r}",
                    read.location,
                    f"create {name!r} inside step {flow.spec.name!r}, or {instead}",
                )
            )
            return
        flow.artifact_inputs[name] = binding.provider
        if binding.provider in planner.composed:  # a value a sub-pipeline hands back
            planner.composed[binding.provider][name] = binding.provenance.kind
        else:
            flows[binding.provider].outputs[name] = binding.provenance.kind


def _undefined_hint(planner: Planner, name: str, binding: Binding | None, flow: Flow, where: Location) -> str:
    if binding is not None and binding.deleted:
        return f"step {binding.provider!r} deletes it ({binding.location.describe()})"
    use = (where.cell if where.cell is not None else -1, where.line or 0)
    own = [(a, e) for a in flow.cells for e in a.facts.events if e.name == name and e.kind in ("bind", "delete")]
    deleted = [(a, e) for a, e in own if e.kind == "delete" and (a.cell.index, e.line) < use]
    if deleted:
        analyzed, event = deleted[-1]
        return f"step {flow.spec.name!r} deletes it ({analyzed.cell.location(planner.notebook, event.line).describe()})"
    later = [(a, e) for a, e in own if e.kind == "bind" and (a.cell.index, e.line) > use]
    if later:
        analyzed, event = later[0]
        return (
            f"step {flow.spec.name!r} defines it only after this use "
            f"({analyzed.cell.location(planner.notebook, event.line).describe()}); move that definition above it"
        )
    layout = planner.layout
    for cell in (*layout.skipped, *layout.unassigned):
        found = planner.analyze(cell, report=False)
        if found and any(e.kind == "bind" and e.name == name for e in found.facts.events):
            why = "is tagged skip" if cell in layout.skipped else "belongs to no step"
            return f"it is defined in cell {cell.index + 1}, which {why}; tag that cell imports or step:NAME"
    for spec in layout.steps:
        if spec.name == flow.spec.name or not spec.cells or spec.cells[0].index < flow.spec.cells[0].index:
            continue
        for cell in spec.cells:
            found = planner.analyzed.get(cell.index)
            if found and any(e.kind == "bind" and e.name == name for e in found.facts.events):
                return (
                    f"step {spec.name!r} defines it further down (cell {cell.index + 1}); "
                    "a step can only use values from the steps above it"
                )
    bound = _all_bound_names(planner)
    if name in bound:  # defined somewhere, but nowhere that runs before this use: never suggest the name itself
        first = min(
            i for i, a in planner.analyzed.items() if any(e.kind == "bind" and e.name == name for e in a.facts.events)
        )
        return (
            f"it is defined in cell {first + 1}, which does not run before step {flow.spec.name!r} uses it; "
            "define it in an earlier step or an imports cell"
        )
    close = difflib.get_close_matches(name, bound, n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    return "define it in an earlier step, an imports cell, or the parameters cell"


def _all_bound_names(planner: Planner) -> list[str]:
    names = {e.name for a in planner.analyzed.values() for e in a.facts.events if e.kind == "bind"}
    return sorted(names)


def _steps(
    planner: Planner, flows: dict[str, Flow], parameters: dict[str, Parameter], prelude: list[PreludeUnit]
) -> list[Step]:
    names = list(flows)
    upstream: dict[str, list[str]] = {}
    after_at: dict[tuple[str, str], Location] = {}
    for name, flow in flows.items():
        explicit: list[str] = []
        for target, where in flow.spec.after:
            if target not in flows and target not in planner.composed:  # after:TASK waits for a sub-pipeline too
                close = difflib.get_close_matches(target, names, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"steps are: {', '.join(names)}"
                planner.diagnostics.append(error("unknown-step", f"after:{target} names no step", where, hint))
            elif target == name:
                # Kale ignores it too: a cell that continues a step keeps the prev: tags its UI
                # wrote when the cell was a step of its own
                continue
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
    used_anywhere = {name for flow in flows.values() for name in flow.prelude_reads}
    arguments = {
        name: argument_names(flow.outputs, flow.parameter_inputs | set(flow.artifact_inputs), _OWN_ARGUMENTS)
        for name, flow in flows.items()
    }
    kinds: dict[str, dict[str, ArtifactKind]] = {name: flow.outputs for name, flow in flows.items()}
    for task, consumed in planner.composed.items():
        arguments[task] = argument_names(consumed, (), _OWN_ARGUMENTS)
        kinds[task] = consumed
    return [
        _step(
            flow, upstream[name], arguments, kinds, parameters, prelude_for(prelude, flow.prelude_reads, used_anywhere)
        )
        for name, flow in flows.items()
    ]


def _step(
    flow: Flow,
    upstream: list[str],
    arguments: dict[str, ArgumentNames],
    kinds: dict[str, dict[str, ArtifactKind]],
    parameters: dict[str, Parameter],
    prelude: tuple[CodeBlock, ...],
) -> Step:
    own = arguments[flow.spec.name]
    outputs = tuple(StepOutput(name, own.outputs[name], flow.outputs[name]) for name in sorted(flow.outputs))
    inputs: list[StepInput] = []
    for name in sorted(flow.parameter_inputs | set(flow.artifact_inputs)):
        arg = own.inputs[name]
        if name in flow.parameter_inputs:
            inputs.append(StepInput(name, arg, None, None, parameter_type=parameters[name].type))
        else:
            producer = flow.artifact_inputs[name]
            key = arguments[producer].outputs[name]
            inputs.append(StepInput(name, arg, producer, key, kind=kinds[producer][name]))
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
        after=tuple(dict.fromkeys(t for t, _ in spec.after if t != spec.name and t in arguments)),
        upstream=tuple(upstream),
        options=replace(options, packages=packages),
        location=spec.location,
        finals=tuple(sorted(flow.finals)),
        prelude=prelude,
    )


#: arguments every step function may have besides the notebook's values (emit.step_source), and
#: the outputs of nb2pipe's own tasks, which runners recognise by name (a run's registered models)
_OWN_ARGUMENTS = frozenset(
    {
        METRICS_OUTPUT,
        REPORT_OUTPUT,
        REGISTERED_OUTPUT,
        PROMOTION_OUTPUT,
        DEPLOYMENT_OUTPUT,
        DRIFT_FLAG_OUTPUT,
        DRIFT_METRICS_OUTPUT,
        DRIFT_REPORT_OUTPUT,
        EXPLANATION_OUTPUT,
        EXPLAIN_METRICS_OUTPUT,
        RETRAIN_OUTPUT,
    }
)
