"""Model lifecycle tags of a step: ``register:``, ``promote:``, ``deploy:`` and the serving
settings (``gpu:``, ``replicas:``, ``scale:``, ``canary:``, ``mode:``, ``monitor``) over the
notebook's ``metadata.nb2pipe.deploy`` defaults.

``gpu:`` sizes the step itself, except on the cell that carries ``deploy:``, where it sizes
the served model: put ``deploy:`` on a cell of its own to ask for both. There, ``gpu:N:TYPE``
names a resource (``nvidia.com/mig-1g.18gb``) or a GPU product (``NVIDIA-H100-80GB-HBM3``):
:func:`nb2pipe.deploy_checks.gpu_placement`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from nb2pipe.deploy_checks import deploy_problems
from nb2pipe.errors import Diagnostic, Location, error
from nb2pipe.ir import (
    DEPLOY_MODES,
    DRIFT_CORRECTIONS,
    DRIFT_METHODS,
    RUNTIME_CHOICES,
    DeploySettings,
    DriftCheck,
    DriftOptions,
    ModelDeployment,
    ModelRegistration,
    Tag,
)
from nb2pipe.notebook.metadata import FLAG, LIST, TEXT, WHOLE, Field, MetadataReader

LIFECYCLE_KINDS = frozenset(
    {"register", "promote", "deploy", "replicas", "scale", "canary", "mode", "runtime", "monitor", "explain", "drift"}
)
#: kinds that configure the deployment when they sit on the deploy: cell
DEPLOY_CELL_KINDS = frozenset({"gpu", "cpu", "memory", "replicas", "scale", "canary", "mode", "runtime", "monitor"})

#: ``metadata.nb2pipe.deploy``: the fields of :class:`DeploySettings` a notebook may set
DEPLOY_FIELDS: dict[str, Field] = {
    "gpu": WHOLE,
    "gpu_type": TEXT,
    "cpu": TEXT,
    "memory": TEXT,
    "min_replicas": WHOLE,
    "max_replicas": WHOLE,
    "scale_metric": TEXT,
    "scale_target": WHOLE,
    "container_concurrency": WHOLE,
    "canary_percent": WHOLE,
    "monitor": FLAG,
    "logger_url": TEXT,
    "namespace": TEXT,
    "port": WHOLE,
    "explainer": TEXT,
    "mode": Field((str,), choices=DEPLOY_MODES),
    "kserve_version": TEXT,
    "prometheus_url": TEXT,
    "prometheus_namespace_label": TEXT,
    "scale_query": TEXT,
    "runtime": Field((str,), choices=RUNTIME_CHOICES),
}

#: ``metadata.nb2pipe.drift``: the fields of :class:`DriftOptions`
DRIFT_FIELDS: dict[str, Field] = {
    "method": Field((str,), choices=DRIFT_METHODS),
    "p_value": Field((float,), low=0, high=1, open_range=True),
    "correction": Field((str,), choices=DRIFT_CORRECTIONS),
    "categorical": LIST,
    "min_rows": Field((int,), low=2),
}


def deploy_defaults(metadata: Mapping[str, Any], where: Location, diagnostics: list[Diagnostic]) -> DeploySettings:
    """``metadata.nb2pipe.deploy``: the same fields as :class:`DeploySettings`."""
    reader = MetadataReader(where, diagnostics)
    section = reader.section(metadata, "nb2pipe.deploy")
    if section is None:
        return DeploySettings()
    settings = replace(DeploySettings(), **reader.fields(section, "nb2pipe.deploy", DEPLOY_FIELDS))
    for problem in deploy_problems(settings):
        reader.report_settings("nb2pipe.deploy", problem)
    return settings


def drift_defaults(metadata: Mapping[str, Any], where: Location, diagnostics: list[Diagnostic]) -> DriftOptions:
    """``metadata.nb2pipe.drift``: method, p_value, correction, categorical, min_rows."""
    reader = MetadataReader(where, diagnostics)
    section = reader.section(metadata, "nb2pipe.drift")
    if section is None:
        return DriftOptions()
    values = reader.fields(section, "nb2pipe.drift", DRIFT_FIELDS)
    if "categorical" in values:
        values["categorical"] = tuple(str(c) for c in values["categorical"])
    if "p_value" in values:
        values["p_value"] = float(values["p_value"])
    return replace(DriftOptions(), **values)


def drift_checks(tagged: Sequence[tuple[Tag, Location]]) -> tuple[DriftCheck, ...]:
    """The step's ``drift:CURRENT[:REFERENCE]`` tags, in cell order."""
    return tuple(
        DriftCheck(tag.args[0], tag.args[1] if len(tag.args) > 1 else None, where)
        for tag, where in tagged
        if tag.kind == "drift"
    )


def lifecycle_of(
    step: str,
    tagged: Sequence[tuple[Tag, Location]],
    defaults: DeploySettings,
    diagnostics: list[Diagnostic],
) -> tuple[ModelRegistration | None, ModelDeployment | None]:
    """The step's registration and deployment from its lifecycle tags (in cell order)."""
    registration: ModelRegistration | None = None
    deploy_at: tuple[Tag, Location] | None = None
    settings = defaults
    promote: tuple[str, bool] | None = None
    explain: list[str] = []
    for tag, where in tagged:
        kind, args = tag.kind, tag.args
        if kind == "drift":
            continue
        if kind == "explain":
            if args[0] not in explain:
                explain.append(args[0])
        elif kind == "register":
            if registration is not None:
                diagnostics.append(_once(step, "register:", where))
                continue
            registration = ModelRegistration(args[0], args[1] if len(args) > 1 else None, None, True, where)
        elif kind == "promote":
            promote = (args[0][:-2], args[0].endswith(">="))
        elif kind == "deploy":
            if deploy_at is not None:
                diagnostics.append(_once(step, "deploy:", where))
                continue
            deploy_at = (tag, where)
        else:
            settings = _apply(settings, tag)
    if registration is not None and promote is not None:
        registration = replace(registration, promote_metric=promote[0], higher_is_better=promote[1])
    if registration is not None:
        registration = replace(registration, explain=tuple(explain))
    if explain and settings.explainer is None:
        settings = replace(settings, explainer=explain[0])
    first = tagged[0][1] if tagged else None
    if registration is None and first is not None:
        needs = [t.text for t, _ in tagged if t.kind in ("promote", "deploy", "explain")]
        if needs:
            diagnostics.append(
                error(
                    "missing-register",
                    f"{', '.join(needs)} on step {step!r}, which registers no model",
                    first,
                    "tag the step that makes the model register:MODEL_NAME",
                )
            )
            return None, None
    if deploy_at is None:
        stray = [t.text for t, _ in tagged if t.kind in DEPLOY_CELL_KINDS]
        if stray and first is not None:
            diagnostics.append(
                error(
                    "missing-deploy",
                    f"serving settings {', '.join(stray)} on step {step!r}, which deploys nothing",
                    first,
                    "add deploy:SERVICE_NAME to the cell with the serving settings",
                )
            )
        return registration, None
    for problem in deploy_problems(settings):
        diagnostics.append(error("bad-tag", f"deploy:{deploy_at[0].args[0]}: {problem}", deploy_at[1], ""))
    return registration, ModelDeployment(deploy_at[0].args[0], settings, deploy_at[1])


def _apply(settings: DeploySettings, tag: Tag) -> DeploySettings:
    kind, args = tag.kind, tag.args
    if kind == "gpu":
        return replace(settings, gpu=int(args[0]), gpu_type=args[1] if len(args) > 1 else settings.gpu_type)
    if kind == "cpu":
        return replace(settings, cpu=args[0])
    if kind == "memory":
        return replace(settings, memory=args[0])
    if kind == "replicas":
        low, _, high = args[0].partition("-")
        return replace(settings, min_replicas=int(low), max_replicas=int(high or low))
    if kind == "scale":
        metric, _, target = args[0].partition("=")
        return replace(settings, scale_metric=metric, scale_target=int(target))  # type: ignore[arg-type]
    if kind == "canary":
        return replace(settings, canary_percent=int(args[0]))
    if kind == "mode":
        return replace(settings, mode=args[0])  # type: ignore[arg-type]
    if kind == "runtime":
        return replace(settings, runtime=args[0])  # type: ignore[arg-type]
    if kind == "monitor":
        return replace(settings, monitor=True)
    return settings


def _once(step: str, what: str, where: Location) -> Diagnostic:
    return error("conflicting-tags", f"step {step!r} has more than one {what} tag", where, "keep one of them")
