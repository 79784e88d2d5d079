"""The drift and explain tasks of a plan as component functions plus their wiring.

Like the register task, their functions call an installed nb2pipe
(:mod:`nb2pipe.monitoring.steps`), so they run in the step's image with
``nb2pipe[drift]`` or ``nb2pipe[explain]`` added. They only read artifacts and write
reports, so kfp may answer them from its cache.
"""

from __future__ import annotations

from dataclasses import asdict

from nb2pipe.emit.step_source import Argument
from nb2pipe.emit.tasks import ExtraTask, Wire, component_function, inherited_options
from nb2pipe.ir import (
    DRIFT_FLAG_OUTPUT,
    DRIFT_METRICS_OUTPUT,
    DRIFT_REPORT_OUTPUT,
    EXPLAIN_METRICS_OUTPUT,
    EXPLANATION_OUTPUT,
    FORCE_PARAMETER,
    PAYLOADS_PARAMETER,
    RETRAIN_OUTPUT,
    DriftTask,
    LifecycleTask,
    PipelinePlan,
)
from nb2pipe.version import __version__

MODULE = "nb2pipe.monitoring.steps"
#: rows of the training data an explain task explains
EXPLAINED_ROWS = 3


def drift_task(item: DriftTask) -> ExtraTask:
    arguments = [
        Argument("reference", "Input", item.reference.kind or "Dataset"),
        Argument("current", "Input", item.current.kind or "Dataset"),
        Argument(DRIFT_METRICS_OUTPUT, "Output", "Metrics"),
        Argument(DRIFT_REPORT_OUTPUT, "Output", "HTML"),
        Argument(DRIFT_FLAG_OUTPUT, "OutputPath", "bool"),
    ]
    config = {"current": item.current.name, "reference": item.reference.name, "options": asdict(item.options)}
    call = (
        f"drift_step({config!r}, reference=reference.path, current=current.path, "
        f"metrics={DRIFT_METRICS_OUTPUT}, report={DRIFT_REPORT_OUTPUT}, flag_path={DRIFT_FLAG_OUTPUT})"
    )
    function = component_function(item.task, arguments, "drift_step", call, MODULE)
    wires = (
        Wire("reference", task=item.reference.source_step, output=item.reference.source_output),
        Wire("current", task=item.current.source_step, output=item.current.source_output),
    )
    return ExtraTask(item.task, function, wires, item.step, f"nb2pipe[drift]=={__version__}", side_effects=False)


def explain_task(item: LifecycleTask, method: str, name: str) -> ExtraTask:
    assert item.example is not None  # the planner reports explain: without training data
    arguments = [
        Argument("model", "Input", item.model.kind or "Model"),
        Argument("data", "Input", item.example.kind or "Dataset"),
        Argument(EXPLANATION_OUTPUT, "Output", "HTML"),
        Argument(EXPLAIN_METRICS_OUTPUT, "Output", "Metrics"),
    ]
    config = {"method": method, "model_name": item.registration.model_name, "rows": EXPLAINED_ROWS}
    call = (
        f"explain_step({config!r}, model=model.path, data=data.path, "
        f"report={EXPLANATION_OUTPUT}, metrics={EXPLAIN_METRICS_OUTPUT})"
    )
    function = component_function(name, arguments, "explain_step", call, MODULE)
    wires = (
        Wire("model", task=item.model.source_step, output=item.model.source_output),
        Wire("data", task=item.example.source_step, output=item.example.source_output),
    )
    return ExtraTask(name, function, wires, item.step, f"nb2pipe[explain]=={__version__}", side_effects=False)


def gate_task(plan: PipelinePlan) -> ExtraTask:
    """The monitoring pipeline's first task: drift of served traffic -> retrain or not."""
    gate = plan.gate
    assert gate is not None
    arguments = [
        Argument(PAYLOADS_PARAMETER, None, "str"),
        Argument(FORCE_PARAMETER, None, "bool"),
        Argument(DRIFT_METRICS_OUTPUT, "Output", "Metrics"),
        Argument(DRIFT_REPORT_OUTPUT, "Output", "HTML"),
        Argument(RETRAIN_OUTPUT, "OutputPath", "bool"),
    ]
    config = {"model_name": gate.model_name, "service": gate.service, "options": asdict(gate.options)}
    # only when set: the gate reads a blob logger's objects when the payloads parameter is empty
    config |= {key: value for key, value in (("logger_url", gate.logger_url), ("namespace", gate.namespace)) if value}
    call = (
        f"monitor_step({config!r}, payloads={PAYLOADS_PARAMETER}, force={FORCE_PARAMETER}, "
        f"metrics={DRIFT_METRICS_OUTPUT}, report={DRIFT_REPORT_OUTPUT}, flag_path={RETRAIN_OUTPUT})"
    )
    function = component_function(gate.task, arguments, "monitor_step", call, MODULE)
    wires = (Wire(PAYLOADS_PARAMETER, parameter=PAYLOADS_PARAMETER), Wire(FORCE_PARAMETER, parameter=FORCE_PARAMETER))
    # a blob store's payload log and MLflow need their credentials, as the register task does
    options = inherited_options(plan.step(gate.step).options)
    return ExtraTask(gate.task, function, wires, gate.step, f"nb2pipe[drift,mlflow]=={__version__}", options=options)
