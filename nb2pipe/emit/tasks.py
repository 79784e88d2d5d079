"""What nb2pipe's own tasks (register, deploy, drift, explain, the retrain gate) share: a
task's component function, where each argument comes from, and the container it runs in."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from nb2pipe.emit.images import step_container
from nb2pipe.emit.step_source import Argument, StepFunction, first_keyword_only, function_name
from nb2pipe.ir import Packaging, PipelinePlan, StepOptions


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
    #: what it takes from its step's options (:func:`inherited_options`)
    options: StepOptions = field(default_factory=StepOptions)


def inherited_options(step: StepOptions) -> StepOptions:
    """The options a built-in task takes from the step it comes from: the step's ``env:`` and
    ``secret:`` variables, ``steps_defaults`` included (``step`` is already merged over them).

    Only these travel: they say how to reach and log in to MLflow, the artifact store and the
    cluster (MLFLOW_TRACKING_TOKEN, AWS_ACCESS_KEY_ID, MLFLOW_S3_ENDPOINT_URL...), which the task
    needs as much as the step. Resources, GPUs, scheduling and volumes size and place the step's
    own work: a register or drift task is small, and training's GPU or volume would only hold a
    node for it.
    """
    return StepOptions(env=step.env, secrets=step.secrets)


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
