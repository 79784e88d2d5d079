"""Planning ``register:`` and ``deploy:``: which value is the model, which is its training
data, and which steps the register task waits for.

The model is the variable named in ``register:NAME:VARIABLE``, else the one value of model
type the step leaves behind. The training data is the first argument of ``MODEL.fit(X, …)``
in the step (without one, of the first ``MODEL(X)``: a PyTorch training loop); its first rows
become MLflow's input example and signature.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass

from nb2pipe.analysis.dataflow import AnalyzedCell, Binding, computed_by_step
from nb2pipe.analysis.magics import parse_code
from nb2pipe.errors import Diagnostic, error, warning
from nb2pipe.ir import ArtifactKind, LifecycleTask, ModelDeployment, ModelRegistration, StepInput, StepSpec


@dataclass(frozen=True)
class PendingRegistration:
    """A registration as the end of its step sees it; wired once all steps are planned."""

    step: str
    registration: ModelRegistration
    deployment: ModelDeployment | None
    model: tuple[str, Binding]
    example: tuple[str, Binding] | None


def snapshot(
    spec: StepSpec,
    cells: tuple[AnalyzedCell, ...],
    made_here: Mapping[str, Binding],
    known: Mapping[str, Binding],
    diagnostics: list[Diagnostic],
) -> PendingRegistration | None:
    registration = spec.registration
    if registration is None:
        return None
    where = registration.location
    name = registration.variable
    if name is None:
        models = sorted(n for n, b in made_here.items() if b.provenance.kind == "Model" and b.replay is None)
        if len(models) != 1:
            found = f"several models ({', '.join(models)})" if models else "no value of a known model type"
            diagnostics.append(
                error(
                    "register-model",
                    f"register:{registration.model_name}: step {spec.name!r} leaves {found}",
                    where,
                    f"name the variable: register:{registration.model_name}:VARIABLE",
                )
            )
            return None
        name = models[0]
    binding = known.get(name)
    if not computed_by_step(binding):
        diagnostics.append(
            error(
                "register-model",
                f"register:{registration.model_name}: no step up to {spec.name!r} computes {name!r}",
                where,
                "register a variable the step (or a step above it) assigns, e.g. model = RandomForestClassifier()",
            )
        )
        return None
    if binding.provenance.unserializable:
        diagnostics.append(
            error("register-model", f"{name!r} is {binding.provenance.unserializable}", where, "register the model")
        )
        return None
    example = _training_data(cells, name)
    example_binding = known.get(example) if example else None
    usable = computed_by_step(example_binding) and not example_binding.provenance.unserializable
    if not usable:
        diagnostics.append(
            warning(
                "no-input-example",
                f"register:{registration.model_name}: no training data found for the input example and signature",
                where,
                f"call {name}.fit(X, y) (or, for a PyTorch module, {name}(X)) in step {spec.name!r} so nb2pipe can "
                "take X's first rows",
            )
        )
    return PendingRegistration(
        spec.name,
        registration,
        spec.deployment,
        (name, binding),
        (example, example_binding) if usable and example and example_binding else None,
    )


def _training_data(cells: tuple[AnalyzedCell, ...], model: str) -> str | None:
    """``X`` of the last ``model.fit(X, …)`` in the step's code; without one, ``X`` of the first
    ``model(X)`` (a PyTorch module is trained by calling it in a loop: its first call sees the
    training batch, later ones may see test data)."""
    fitted: list[tuple[int, int, int, str]] = []
    called: list[tuple[int, int, int, str]] = []
    for number, cell in enumerate(cells):
        try:
            tree = parse_code(cell.code.source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):  # breadth first: calls are put in source order below
            if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Name)):
                continue
            function, where = node.func, (number, node.lineno, node.col_offset, node.args[0].id)
            if (
                isinstance(function, ast.Attribute)
                and function.attr == "fit"
                and isinstance(function.value, ast.Name)
                and function.value.id == model
            ):
                fitted.append(where)
            elif isinstance(function, ast.Name) and function.id == model:
                called.append(where)
    if fitted:
        return max(fitted)[3]
    return min(called)[3] if called else None


def wire(
    pending: list[PendingRegistration],
    outputs: Mapping[str, dict[str, ArtifactKind]],
    metric_steps: list[str],
    parameters: list[str],
    taken: set[str],
    diagnostics: list[Diagnostic],
) -> tuple[LifecycleTask, ...]:
    """Make each registered value an output of its step and build the lifecycle tasks.

    ``outputs`` is updated in place: the model and its training data leave their steps.
    ``taken`` holds the task names in use and receives the new ones.
    """
    tasks: list[LifecycleTask] = []
    by_model: dict[str, PendingRegistration] = {}
    by_service: dict[str, PendingRegistration] = {}
    for item in pending:
        registration, deployment = item.registration, item.deployment
        earlier = by_model.setdefault(registration.model_name, item)
        if earlier is not item:
            diagnostics.append(_twice(f"model {registration.model_name!r}", earlier.step, registration.location))
            continue
        if deployment is not None:
            other = by_service.setdefault(deployment.service, item)
            if other is not item:
                diagnostics.append(_twice(f"service {deployment.service!r}", other.step, deployment.location))
                continue
        model = step_output_input(item.model, "model", outputs, "Model")
        example = step_output_input(item.example, "example", outputs, "Dataset") if item.example else None
        suffix = task_suffix(registration.model_name)
        register = unique_name(f"register-{suffix}", taken)
        deploy = unique_name(f"deploy-{deployment.service}", taken) if deployment else None
        if registration.explain and example is None:
            diagnostics.append(
                error(
                    "explain-data",
                    f"explain:{registration.explain[0]} needs the data {registration.model_name!r} was trained on",
                    registration.location,
                    "call MODEL.fit(X, y) (or MODEL(X) for a PyTorch module) in the registered step so nb2pipe "
                    "can find X",
                )
            )
        explain = tuple((method, unique_name(f"explain-{suffix}-{method}", taken)) for method in registration.explain)
        tasks.append(
            LifecycleTask(
                register,
                deploy,
                item.step,
                model,
                example,
                tuple(metric_steps),
                tuple(parameters),
                registration,
                deployment,
                explain,
            )
        )
    return tuple(tasks)


def step_output_input(
    found: tuple[str, Binding], arg: str, outputs: Mapping[str, dict[str, ArtifactKind]], kind: ArtifactKind
) -> StepInput:
    name, binding = found
    produced = outputs[binding.provider]
    if name not in produced:
        produced[name] = kind if binding.provenance.kind == "Artifact" else binding.provenance.kind
    return StepInput(name, arg, binding.provider, name, kind=produced[name])


def _twice(what: str, step: str, where: object) -> Diagnostic:
    return error(
        "conflicting-tags",
        f"{what} is already registered or deployed by step {step!r}",
        where,  # type: ignore[arg-type]
        "give each register:/deploy: its own name",
    )


def task_suffix(model_name: str) -> str:
    text = "".join(ch if ch.isascii() and ch.isalnum() else "-" for ch in model_name.lower()).strip("-")
    return text or "model"


def unique_name(name: str, taken: set[str]) -> str:
    candidate, counter = name, 2
    while candidate in taken:
        candidate = f"{name}-{counter}"
        counter += 1
    taken.add(candidate)
    return candidate
