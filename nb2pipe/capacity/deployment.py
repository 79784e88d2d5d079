"""``nb2pipe deploy --plan``: a capacity plan's KServe fields written into InferenceServices.

One variant: its envelope (replicas, ``rps`` target, container concurrency, batcher) goes
into the one InferenceService. Several: one InferenceService per variant, named
``SERVICE-VARIANT``, and an InferenceGraph ``SERVICE`` whose Splitter sends each the
plan's share of the traffic.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nb2pipe.capacity.plan import CapacityPlan, VariantServing
from nb2pipe.errors import Nb2PipeError
from nb2pipe.ir import DeploySettings
from nb2pipe.lifecycle.deploy import render
from nb2pipe.lifecycle.deploy_mode import ResolvedMode, resolve_mode
from nb2pipe.lifecycle.inference_service import MANAGED_BY

GRAPH_API_VERSION = "serving.kserve.io/v1alpha1"


def settings_for(serving: VariantServing, base: DeploySettings) -> DeploySettings:
    """``base`` (GPU, resources, logger...) with the plan's autoscaling and batcher fields."""
    return replace(
        base,
        min_replicas=serving.min_replicas,
        max_replicas=max(serving.max_replicas, 1),
        scale_metric=serving.scale_metric,
        scale_target=serving.scale_target,
        container_concurrency=serving.container_concurrency,
        batch_max_size=serving.max_batch_size,
        batch_max_latency_ms=serving.max_latency_ms,
    )


@dataclass(frozen=True)
class PlannedDeployment:
    resources: tuple[dict[str, Any], ...]
    yaml: str
    warnings: tuple[str, ...]
    mode: ResolvedMode | None = None
    #: what KServe will do with each InferenceService's settings, one line each ("SERVICE: ..." with several)
    behaviour: tuple[str, ...] = ()


def variant_service(service: str, variant: str) -> str:
    """``SERVICE-VARIANT`` as a DNS label: lowercase, '-' for anything else."""
    cleaned = "".join(ch if ch.isascii() and ch.isalnum() else "-" for ch in variant.lower()).strip("-")
    return f"{service}-{cleaned}"[:63].rstrip("-")


def render_plan(
    plan: CapacityPlan,
    service: str,
    base: DeploySettings,
    *,
    model_uri: str | None = None,
    variant: str | None = None,
    store: str | Path | None = None,
    notebook_uri: str | None = None,
) -> PlannedDeployment:
    """Every resource the plan needs; ``variant`` picks one of a plan's variants."""
    import yaml

    entries = plan.serving
    if variant is not None:
        entries = tuple(s for s in plan.serving if s.variant == variant)
        if not entries:
            names = ", ".join(s.variant for s in plan.serving)
            raise Nb2PipeError(f"the plan serves no variant {variant!r}; it serves {names}")
    if len(entries) > 1 and model_uri is not None:
        raise Nb2PipeError(
            "this plan serves several variants, each with its own model: leave MODEL_URI out "
            "(the plan names them) or pick one with --variant"
        )
    resources: list[dict[str, Any]] = []
    warnings: list[str] = []
    behaviour: list[str] = []
    mode = resolve_mode(base.mode)  # once: every variant runs in the same mode
    for entry in entries:
        uri = model_uri or entry.model_uri
        if not uri:
            raise Nb2PipeError(f"the plan does not say which model variant {entry.variant!r} is; give MODEL_URI")
        name = service if len(entries) == 1 else variant_service(service, entry.variant)
        rendered = render(uri, name, settings_for(entry, base), store=store, notebook_uri=notebook_uri, mode=mode)
        resources.append(rendered.resource)
        warnings.extend(w for w in rendered.warnings if w not in warnings)
        behaviour.extend(line if len(entries) == 1 else f"{name}: {line}" for line in rendered.behaviour)
    if len(entries) > 1:
        resources.append(inference_graph(service, entries, base.namespace))
    text = yaml.safe_dump_all(resources, sort_keys=False)
    return PlannedDeployment(tuple(resources), text, tuple(warnings), mode, tuple(behaviour))


def inference_graph(service: str, entries: tuple[VariantServing, ...], namespace: str | None) -> dict[str, Any]:
    """A Splitter over the variants' InferenceServices, weighted by the plan's traffic split."""
    from kserve import (
        V1alpha1InferenceGraph,
        V1alpha1InferenceGraphSpec,
        V1alpha1InferenceRouter,
        V1alpha1InferenceStep,
    )
    from kubernetes.client import ApiClient, V1ObjectMeta

    steps = [
        V1alpha1InferenceStep(service_name=variant_service(service, e.variant), weight=e.traffic_percent)
        for e in entries
        if e.traffic_percent > 0
    ]
    graph = V1alpha1InferenceGraph(
        api_version=GRAPH_API_VERSION,
        kind="InferenceGraph",
        metadata=V1ObjectMeta(name=service, namespace=namespace, labels={"app.kubernetes.io/managed-by": MANAGED_BY}),
        spec=V1alpha1InferenceGraphSpec(nodes={"root": V1alpha1InferenceRouter(router_type="Splitter", steps=steps)}),
    )
    return ApiClient().sanitize_for_serialization(graph)
