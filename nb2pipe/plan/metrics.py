"""The metrics cell: which step logs each value it names (Kale's ``pipeline-metrics``)."""

from __future__ import annotations

from nb2pipe.analysis.dataflow import PARAMETER, Binding
from nb2pipe.analysis.magics import strip_magics
from nb2pipe.analysis.parameters import parse_metrics
from nb2pipe.errors import Location, error, warning
from nb2pipe.ir import Cell
from nb2pipe.plan.state import Flow, Planner


def resolve_metrics(planner: Planner, cell: Cell, known: dict[str, Binding], flows: dict[str, Flow]) -> None:
    """Give each value a metrics cell names to the step that logs it; report those no step can."""
    where = cell.location(planner.notebook)
    try:
        names, problems = parse_metrics(strip_magics(cell.source).source, where)
    except SyntaxError as exc:
        planner.syntax_error(cell, exc)
        return
    planner.diagnostics.extend(problems)
    above = [flow for flow in flows.values() if flow.spec.cells and flow.spec.cells[0].index < cell.index]
    for metric in names:
        if metric.name in planner.refused_parameters:
            continue  # its invalid-parameter error says all there is to say
        at = cell.location(planner.notebook, metric.line)
        flow = _metric_step(planner, metric.name, known.get(metric.name), above, flows, at)
        if flow is not None and metric.name not in flow.metrics:
            flow.metrics.append(metric.name)


#: what a replayed definition is, for saying why it cannot be a metric
_DEFINITIONS = {"import": "a module", "def": "a function", "class": "a class", "lambda": "a function"}
_NUMBERS = ("int", "float", "bool")
_METRIC_HINT = "KFP metrics are numbers: name a value such as accuracy = model.score(X, y)"


def _metric_step(
    planner: Planner, name: str, binding: Binding | None, above: list[Flow], flows: dict[str, Flow], at: Location
) -> Flow | None:
    """The step that logs metric ``name``: the step that computes it. A pipeline parameter or a
    prelude value (every step has those) is logged by the last step above that reads it, else by
    the last step above, which then takes it in; Kale too logs them from a step that names them."""
    if binding is None or binding.deleted or (not above and not binding.from_step):
        planner.diagnostics.append(
            error(
                "undefined-metric",
                f"metric {name!r} is not computed by any step above this cell",
                at,
                "metrics name values that a step computes, e.g. accuracy = model.score(X, y)",
            )
        )
        return None
    kind, type_name = binding.origin.kind, binding.origin.attr
    if binding.provider == PARAMETER and type_name == "str":
        # Kale skips text it cannot read as a number when it writes the metrics
        planner.diagnostics.append(
            warning("non-numeric-metric", f"metric {name!r} is a str parameter, so it is not logged", at, _METRIC_HINT)
        )
        return None
    if kind in _DEFINITIONS or (binding.provider == PARAMETER and type_name not in _NUMBERS):
        what = _DEFINITIONS.get(kind) or f"a {type_name} parameter"  # Kale's run would fail on it
        planner.diagnostics.append(
            error("undefined-metric", f"metric {name!r} is {what}, not a number", at, _METRIC_HINT)
        )
        return None
    if binding.provider in planner.composed:
        planner.diagnostics.append(
            error(
                "undefined-metric",
                f"metric {name!r} comes from the sub-pipeline {binding.provider!r}, whose steps log their own metrics",
                at,
                "name it in a metrics cell of the notebook that computes it",
            )
        )
        return None
    if binding.from_step:
        return flows[binding.provider]
    if binding.provider == PARAMETER:
        flow = next((f for f in reversed(above) if name in f.parameter_inputs), above[-1])
        flow.parameter_inputs.add(name)
    else:
        flow = next((f for f in reversed(above) if name in f.prelude_reads), above[-1])
        flow.prelude_reads.add(name)
    return flow
