"""The register and deploy tasks of a plan as component functions plus their wiring, shared
by the compiled pipeline (:mod:`nb2pipe.emit.kfp`) and the readable DSL file.

Their functions call :mod:`nb2pipe.lifecycle.steps` from an installed nb2pipe, so they run
in the registered step's image with ``nb2pipe[...]`` added to its packages.
"""

from __future__ import annotations

import ast
from dataclasses import asdict, dataclass

from nb2pipe import __version__
from nb2pipe.emit.identifiers import kfp_identifiers
from nb2pipe.emit.images import step_container
from nb2pipe.emit.step_source import Argument, StepFunction, first_keyword_only, function_name
from nb2pipe.ir import LifecycleTask, Packaging, PipelinePlan
from nb2pipe.plan import DEPLOYMENT_OUTPUT, METRICS_OUTPUT, PROMOTION_OUTPUT, REGISTERED_OUTPUT


@dataclass(frozen=True)
class Wire:
    """Where one argument comes from: a pipeline parameter, or another task's output."""

    arg: str
    parameter: str | None = None
    task: str | None = None
    output: str | None = None


@dataclass(frozen=True)
class ExtraTask:
    name: str
    function: StepFunction
    wires: tuple[Wire, ...]
    #: the notebook step whose image (and packages) the task runs in
    step: str
    requirement: str
    #: registering and deploying change the world: never answer them from the cache
    side_effects: bool = True


def extra_tasks(plan: PipelinePlan) -> list[ExtraTask]:
    """The tasks nb2pipe adds after the notebook's steps: register, deploy, explain, drift."""
    from nb2pipe.emit.monitoring import drift_task, explain_task

    tasks: list[ExtraTask] = []
    for item in plan.lifecycle:
        tasks.append(_register(plan, item))
        if item.deployment is not None and item.deploy_task is not None:
            tasks.append(_deploy(item))
        tasks += [explain_task(item, method, name) for method, name in item.explain_tasks]
    tasks += [drift_task(item) for item in plan.drift]
    return tasks


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
    config = {"service": item.deployment.service, "settings": asdict(item.deployment.settings)}
    call = f"deploy_step({config!r}, registered={REGISTERED_OUTPUT}.path, deployment={DEPLOYMENT_OUTPUT})"
    function = component_function(item.deploy_task, arguments, "deploy_step", call)
    wires = (Wire(REGISTERED_OUTPUT, task=item.register_task, output=REGISTERED_OUTPUT),)
    return ExtraTask(item.deploy_task, function, wires, item.step, f"nb2pipe[mlflow,serve]=={__version__}")


def component_function(
    task: str, arguments: list[Argument], entry: str, call: str, module: str = "nb2pipe.lifecycle.steps"
) -> StepFunction:
    name = function_name(task)
    split = first_keyword_only(arguments)
    required = [f"{a.name}: {a.annotation}" for a in arguments[:split]]
    # from the first optional argument on, keyword-only (KFP passes every argument by name)
    rest = [f"{a.name}: {a.annotation}" + (" = None" if a.optional else "") for a in arguments[split:]]
    signature = ", ".join(required + (["*", *rest] if rest else []))
    text = f"def {name}({signature}):\n    from {module} import {entry}\n    {call}\n"
    ast.parse(text)  # the text is built from reprs and identifiers: prove it is Python
    return StepFunction(name, tuple(arguments), text)


def extra_container(task: ExtraTask, plan: PipelinePlan, packaging: Packaging | None) -> tuple[str, tuple[str, ...]]:
    """A register/deploy task runs in its step's image, with nb2pipe added when missing."""
    image, packages = step_container(plan.step(task.step), plan, packaging)
    return image, (task.requirement, *packages)
