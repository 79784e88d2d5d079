"""The register and deploy tasks of a plan as component functions plus their wiring, shared
by the compiled pipeline (:mod:`nb2pipe.emit.kfp`) and the readable DSL file.

Their functions call :mod:`nb2pipe.lifecycle.steps` from an installed nb2pipe, so they run
in the registered step's image with ``nb2pipe[...]`` added to its packages.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from nb2pipe.emit.monitoring import drift_task, explain_task
from nb2pipe.emit.step_source import Argument
from nb2pipe.emit.tasks import ExtraTask, Wire, component_function, inherited_options
from nb2pipe.identifiers import kfp_identifiers
from nb2pipe.ir import (
    DEPLOYMENT_OUTPUT,
    METRICS_OUTPUT,
    PROMOTION_OUTPUT,
    REGISTERED_OUTPUT,
    DeploySettings,
    LifecycleTask,
    PipelinePlan,
)
from nb2pipe.version import __version__


def extra_tasks(plan: PipelinePlan) -> list[ExtraTask]:
    """The tasks nb2pipe adds after the notebook's steps: register, deploy, explain, drift; each
    with its step's env: and secret: variables (a deploy: cell's own are its step's)."""
    tasks: list[ExtraTask] = []
    for item in plan.lifecycle:
        tasks.append(_register(plan, item))
        if item.deployment is not None and item.deploy_task is not None:
            tasks.append(_deploy(item))
        tasks += [explain_task(item, method, name) for method, name in item.explain_tasks]
    tasks += [drift_task(item) for item in plan.drift]
    return [replace(task, options=inherited_options(plan.step(task.step).options)) for task in tasks]


def _register(plan: PipelinePlan, item: LifecycleTask) -> ExtraTask:
    parameters = {p.name: p for p in plan.parameters}
    reserved = {"model", "example", REGISTERED_OUTPUT, PROMOTION_OUTPUT}
    arguments = [Argument("model", "Input", item.model.kind or "Model")]
    wires = [Wire("model", task=item.model.source_step, output=item.model.source_output)]
    if item.example is not None:
        arguments.append(Argument("example", "Input", item.example.kind or "Dataset"))
        wires.append(Wire("example", task=item.example.source_step, output=item.example.source_output))
    metric_args = []
    for index, step in enumerate(item.metrics_from):
        arg = f"metrics_{index}"
        reserved.add(arg)
        metric_args.append(arg)
        arguments.append(Argument(arg, "Input", "Metrics"))
        wires.append(Wire(arg, task=step, output=METRICS_OUTPUT))
    param_args = []
    taken = reserved | {REGISTERED_OUTPUT, PROMOTION_OUTPUT}
    # the notebook's names may be ones KFP refuses (`_seed`, `größe`): the register function
    # takes KFP identifiers and logs each value under the notebook's own name
    for name, arg in kfp_identifiers(item.parameters, taken).items():
        param_args.append((name, arg))
        arguments.append(Argument(arg, None, parameters[name].type, parameters[name].optional))
        wires.append(Wire(arg, parameter=name))
    arguments += [Argument(REGISTERED_OUTPUT, "Output", "Model"), Argument(PROMOTION_OUTPUT, "Output", "Markdown")]
    registration = item.registration
    config = {
        "model_name": registration.model_name,
        "experiment": plan.name,
        "promote_metric": registration.promote_metric,
        "higher_is_better": registration.higher_is_better,
        "notebook": plan.notebook,
        "step": item.step,
    }
    call = (
        f"register_step({config!r}, model=model.path, "
        f"example={'example.path' if item.example else 'None'}, "
        f"metrics=[{', '.join(a + '.path' for a in metric_args)}], "
        f"params={{{', '.join(f'{n!r}: {a}' for n, a in param_args)}}}, "
        f"registered={REGISTERED_OUTPUT}, report={PROMOTION_OUTPUT})"
    )
    function = component_function(item.register_task, arguments, "register_step", call)
    return ExtraTask(item.register_task, function, tuple(wires), item.step, f"nb2pipe[mlflow]=={__version__}")


def _deploy(item: LifecycleTask) -> ExtraTask:
    assert item.deployment is not None and item.deploy_task is not None
    arguments = [Argument(REGISTERED_OUTPUT, "Input", "Model"), Argument(DEPLOYMENT_OUTPUT, "Output", "Artifact")]
    config = {"service": item.deployment.service, "settings": _set_fields(item.deployment.settings)}
    call = f"deploy_step({config!r}, registered={REGISTERED_OUTPUT}.path, deployment={DEPLOYMENT_OUTPUT})"
    function = component_function(item.deploy_task, arguments, "deploy_step", call)
    wires = (Wire(REGISTERED_OUTPUT, task=item.register_task, output=REGISTERED_OUTPUT),)
    return ExtraTask(item.deploy_task, function, wires, item.step, f"nb2pipe[mlflow,serve]=={__version__}")


def _set_fields(settings: DeploySettings) -> dict[str, Any]:
    """The fields that differ from their defaults: the step builds the rest, so adding a setting
    to nb2pipe leaves compiled pipelines as they were."""
    return {
        field.name: getattr(settings, field.name)
        for field in fields(settings)
        if getattr(settings, field.name) != field.default
    }
