"""Planning ``drift:CURRENT[:REFERENCE]``: which values the drift task compares.

CURRENT is a variable the tagged step (or a step above it) computes; REFERENCE is named the
same way, or else is the training data of the one model the notebook registers (the ``X`` of
its ``model.fit(X, y)``), which the register task also keeps with the model in MLflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from nb2pipe.analysis.dataflow import Binding, computed_by_step
from nb2pipe.errors import CompileError, Diagnostic, Location, error
from nb2pipe.ir import (
    FORCE_PARAMETER,
    PAYLOADS_PARAMETER,
    ArtifactKind,
    DriftCheck,
    DriftOptions,
    DriftTask,
    LifecycleTask,
    MonitorGate,
    Parameter,
    PipelinePlan,
    StepInput,
    StepSpec,
)
from nb2pipe.plan.lifecycle import step_output_input, unique_name


@dataclass(frozen=True)
class PendingDrift:
    """A drift check as the end of its step sees it; wired once all steps are planned."""

    step: str
    check: DriftCheck
    current: tuple[str, Binding]
    reference: tuple[str, Binding] | None


def drift_snapshot(spec: StepSpec, known: Mapping[str, Binding], diagnostics: list[Diagnostic]) -> list[PendingDrift]:
    found: list[PendingDrift] = []
    for check in spec.drift:
        current = _data(check.current, spec.name, check, known, diagnostics)
        reference = _data(check.reference, spec.name, check, known, diagnostics) if check.reference else None
        if current is not None and (reference is not None or check.reference is None):
            found.append(PendingDrift(spec.name, check, current, reference))
    return found


def _data(
    name: str, step: str, check: DriftCheck, known: Mapping[str, Binding], diagnostics: list[Diagnostic]
) -> tuple[str, Binding] | None:
    binding = known.get(name)
    if not computed_by_step(binding):
        diagnostics.append(
            error(
                "drift-data",
                f"drift: no step up to {step!r} computes {name!r}",
                check.location,
                "name a table (e.g. a pandas DataFrame) that this step or a step above it assigns",
            )
        )
        return None
    if binding.provenance.unserializable:
        diagnostics.append(
            error("drift-data", f"drift: {name!r} is {binding.provenance.unserializable}", check.location, "")
        )
        return None
    return name, binding


def wire_drift(
    pending: list[PendingDrift],
    lifecycle: tuple[LifecycleTask, ...],
    outputs: Mapping[str, dict[str, ArtifactKind]],
    options: DriftOptions,
    taken: set[str],
    diagnostics: list[Diagnostic],
) -> tuple[DriftTask, ...]:
    """Make the compared values outputs of their steps and name the drift tasks."""
    trained_on = [item.example for item in lifecycle if item.example is not None]
    tasks: list[DriftTask] = []
    for item in pending:
        current = step_output_input(item.current, "current", outputs, "Dataset")
        if item.reference is not None:
            reference = step_output_input(item.reference, "reference", outputs, "Dataset")
        elif len(trained_on) == 1:
            reference = StepInput(
                trained_on[0].name, "reference", trained_on[0].source_step, trained_on[0].source_output, "Dataset"
            )
        else:
            why = "registers no model with training data" if not trained_on else "registers several models"
            diagnostics.append(
                error(
                    "drift-reference",
                    f"drift:{item.check.current}: the notebook {why}, so there is no default reference",
                    item.check.location,
                    f"name the reference data: drift:{item.check.current}:X_train",
                )
            )
            continue
        name = unique_name(f"drift-{item.check.current.lower().replace('_', '-').strip('-') or 'data'}", taken)
        tasks.append(DriftTask(name, item.step, current, reference, options))
    return tuple(tasks)


_MONITOR_SUFFIX = "-monitor"
_MAX_NAME = 128


def monitoring_plan(plan: PipelinePlan, path: str | None = None) -> PipelinePlan:
    """The plan of the monitoring pipeline compiled from the same notebook: a drift gate on
    served traffic, then (only when it says so) the training steps, register and deploy.

    Explanations and the notebook's own ``drift:`` checks are left out: they document a
    training run, while this pipeline only decides whether to retrain and does it.
    ``path`` is the notebook as the user named it, for diagnostics (default: its file name).
    """
    where = Location(path or plan.notebook)
    if not plan.lifecycle:
        raise CompileError(
            (
                error(
                    "no-registered-model",
                    "a monitoring pipeline retrains a registered model, and this notebook registers none",
                    where,
                    "tag the training step register:MODEL_NAME (and deploy:SERVICE with monitor to log traffic)",
                ),
            )
        )
    if len(plan.lifecycle) > 1:
        models = ", ".join(item.registration.model_name for item in plan.lifecycle)
        raise CompileError(
            (
                error(
                    "several-registered-models",
                    f"a monitoring pipeline watches one model; this notebook registers {models}",
                    where,
                    "split the notebook, one registered model each",
                ),
            )
        )
    taken = {p.name for p in plan.parameters}
    clash = sorted(taken & {PAYLOADS_PARAMETER, FORCE_PARAMETER})
    if clash:
        raise CompileError(
            (
                error(
                    "reserved-parameter",
                    f"the monitoring pipeline adds the parameter(s) {', '.join(clash)}, which the notebook also has",
                    where,
                    "rename the notebook parameter",
                ),
            )
        )
    item = plan.lifecycle[0]
    names = {s.name for s in plan.steps} | {item.register_task, item.deploy_task or ""}
    gate = MonitorGate(
        unique_name("check-drift", names),
        item.registration.model_name,
        item.deployment.service if item.deployment else None,
        item.step,
        plan.drift_options,
        item.deployment.settings.logger_url if item.deployment else None,
        item.deployment.settings.namespace if item.deployment else None,
    )
    extra = (
        Parameter(PAYLOADS_PARAMETER, "str", "", where),
        Parameter(FORCE_PARAMETER, "bool", False, where),
    )
    return replace(
        plan,
        # KFP's names hold at most 128 characters, the suffix included
        name=f"{plan.name[: _MAX_NAME - len(_MONITOR_SUFFIX)].rstrip('-')}{_MONITOR_SUFFIX}",
        description=f"Retrain {item.registration.model_name} when served traffic drifts ({plan.notebook})",
        parameters=plan.parameters + extra,
        lifecycle=(replace(item, explain_tasks=()),),
        drift=(),
        gate=gate,
    )
