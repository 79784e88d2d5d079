"""``nb2pipe deploy --plan``: a capacity plan's KServe fields written into InferenceServices.

One variant: its envelope (replicas, ``rps`` target, container concurrency, batcher) goes
into the one InferenceService. Several: one InferenceService per variant, named
``SERVICE-VARIANT``, and an InferenceGraph ``SERVICE`` whose Splitter sends each a share.

A Splitter's weights are fixed, while the plan changes its split every interval. The split
deployed is the one fixed split that scores best on the plan's own objective
(``accuracy-value x accuracy in points - replicas``, summed over the plan's intervals), each
variant sized for its share of every interval's forecast. The busiest interval's split is
not used: it is chosen for the peak only and costs accuracy all day (on the digits forests at
x10 it serves less accurately *and* needs more replicas than the best fixed split). What the
fixed split costs against the plan's schedule is stated (``DeployedSplit.summary``) and
written as annotations; following the schedule needs an autoscaler that re-weights the graph.
"""

from __future__ import annotations

import math
from collections import Counter
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
SPLIT_ANNOTATION = "nb2pipe.io/split"
EXPECTED_ACCURACY_ANNOTATION = "nb2pipe.io/expected-accuracy"
PLAN_ACCURACY_ANNOTATION = "nb2pipe.io/plan-accuracy"
REPLICA_HOURS_ANNOTATION = "nb2pipe.io/replica-hours"
PLAN_REPLICA_HOURS_ANNOTATION = "nb2pipe.io/plan-replica-hours"
#: the optimizer's own slack when it rounds a replica count up (optimize.Optimizer._search)
_ROUNDING = 1e-9


def settings_for(serving: VariantServing, base: DeploySettings) -> DeploySettings:
    """``base`` (GPU, resources, logger...) with the plan's autoscaling and batcher fields; a
    variant measured on a GPU gets one per replica unless ``base`` asks for some."""
    return replace(
        base,
        gpu=base.gpu or (1 if measured_on_gpu(serving) else 0),
        min_replicas=serving.min_replicas,
        max_replicas=max(serving.max_replicas, 1),
        scale_metric=serving.scale_metric,
        scale_target=serving.scale_target,
        container_concurrency=serving.container_concurrency,
        batch_max_size=serving.max_batch_size,
        batch_max_latency_ms=serving.max_latency_ms,
    )


@dataclass(frozen=True)
class DeployedSplit:
    """The fixed split deployed, against the plan's per-interval schedule (all from the plan's numbers)."""

    #: (variant, percent) for every variant that gets traffic; the percents add up to 100
    percents: tuple[tuple[str, int], ...]
    #: why this split: the best fixed split, the plan's only variant, or the one --variant picked
    rule: str
    #: accuracy per request of the deployed split (None when a variant has no accuracy)
    expected_accuracy: float | None
    #: the plan's schedule, per request: each interval's split weighted by its forecast load
    plan_accuracy: float | None
    #: replica-hours over the plan's horizon when each variant's autoscaler keeps just enough
    #: replicas for its share of each interval's forecast
    replica_hours: float
    plan_replica_hours: float
    peak_rps: float
    #: what the deployed maxReplicas carry, all variants together, at their rates under the SLO
    peak_capacity_rps: float
    #: every variant's maxReplicas carries its share of the peak forecast
    covers_peak: bool
    #: the split of the plan's busiest interval (every variant of the plan, 0 % included), for comparison
    busiest_percents: tuple[tuple[str, int], ...]

    @property
    def accuracy_difference(self) -> float | None:
        if self.expected_accuracy is None or self.plan_accuracy is None:
            return None
        return self.expected_accuracy - self.plan_accuracy

    def summary(self) -> tuple[str, ...]:
        lines = [f"traffic split: {_split_text(self.percents)} ({self.rule})"]
        busiest = tuple((variant, percent) for variant, percent in self.busiest_percents if percent > 0)
        if len(self.busiest_percents) > 1 and busiest != self.percents:
            lines.append(f"the plan's busiest interval splits {_split_text(self.busiest_percents)}; not deployed")
        if self.expected_accuracy is not None and self.plan_accuracy is not None:
            lines.append(
                f"expected accuracy {self.expected_accuracy:.4f} per request; the plan's schedule "
                f"{self.plan_accuracy:.4f} ({_signed(self.accuracy_difference, 4)})"
            )
        extra = self.replica_hours - self.plan_replica_hours
        relative = f", {extra / self.plan_replica_hours:+.1%}" if self.plan_replica_hours else ""
        lines.append(
            f"{self.replica_hours:.1f} replica-hours over the plan's horizon; the plan's schedule "
            f"{self.plan_replica_hours:.1f} ({_signed(extra, 1)}{relative})"
        )
        covered = "covered" if self.covers_peak else "NOT covered"
        lines.append(
            f"peak forecast {self.peak_rps:g} requests/s: {covered} (maxReplicas carry {self.peak_capacity_rps:g})"
        )
        if len(self.busiest_percents) > 1:
            lines.append(
                "the plan changes its split every interval and a deployment keeps this one: following the plan "
                "needs an autoscaler that changes the split (nb2pipe autoscale, not built yet)"
            )
        return tuple(lines)

    def annotations(self) -> dict[str, str]:
        found = {
            SPLIT_ANNOTATION: ",".join(f"{variant}={percent}" for variant, percent in self.percents),
            REPLICA_HOURS_ANNOTATION: f"{self.replica_hours:.1f}",
            PLAN_REPLICA_HOURS_ANNOTATION: f"{self.plan_replica_hours:.1f}",
        }
        if self.expected_accuracy is not None:
            found[EXPECTED_ACCURACY_ANNOTATION] = f"{self.expected_accuracy:.4f}"
        if self.plan_accuracy is not None:
            found[PLAN_ACCURACY_ANNOTATION] = f"{self.plan_accuracy:.4f}"
        return found

    def to_json(self) -> dict[str, Any]:
        difference = self.accuracy_difference
        return {
            "split": dict(self.percents),
            "rule": self.rule,
            "expected_accuracy": _rounded(self.expected_accuracy, 5),
            "plan_accuracy": _rounded(self.plan_accuracy, 5),
            "accuracy_difference": _rounded(difference, 5),
            "replica_hours": round(self.replica_hours, 3),
            "plan_replica_hours": round(self.plan_replica_hours, 3),
            "peak_rps": self.peak_rps,
            "peak_capacity_rps": round(self.peak_capacity_rps, 2),
            "covers_peak": self.covers_peak,
            "busiest_interval_split": dict(self.busiest_percents),
        }


@dataclass(frozen=True)
class PlannedDeployment:
    resources: tuple[dict[str, Any], ...]
    yaml: str
    warnings: tuple[str, ...]
    mode: ResolvedMode | None = None
    #: what KServe will do with each InferenceService's settings, one line each ("SERVICE: ..." with several)
    behaviour: tuple[str, ...] = ()
    #: the split deployed and what it costs against the plan
    split: DeployedSplit | None = None
    #: ``split`` in words, one line each
    summary: tuple[str, ...] = ()


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
    """Every resource the plan needs; ``variant`` picks one of a plan's variants (it then gets all the traffic)."""
    import yaml

    if variant is not None and all(s.variant != variant for s in plan.serving):
        names = ", ".join(s.variant for s in plan.serving)
        raise Nb2PipeError(f"the plan serves no variant {variant!r}; it serves {names}")
    if len(plan.serving) > 1 and variant is None and model_uri is not None:
        raise Nb2PipeError(
            "this plan serves several variants, each with its own model: leave MODEL_URI out "
            "(the plan names them) or pick one with --variant"
        )
    split, entries = deployed_split(plan, variant)
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
        device_behaviour, device_warnings = device_lines(entry, base)
        warnings.extend(w for w in [*rendered.warnings, *device_warnings] if w not in warnings)
        lines = [*rendered.behaviour, *device_behaviour]
        behaviour.extend(line if len(entries) == 1 else f"{name}: {line}" for line in lines)
    if len(entries) > 1:
        resources.append(inference_graph(service, entries, base.namespace))
    # the resource the user calls (the graph, or the one InferenceService) says what it deploys
    endpoint = resources[-1]["metadata"]
    endpoint["annotations"] = {**(endpoint.get("annotations") or {}), **split.annotations()}
    text = yaml.safe_dump_all(resources, sort_keys=False)
    return PlannedDeployment(tuple(resources), text, tuple(warnings), mode, tuple(behaviour), split, split.summary())


def measured_on_gpu(serving: VariantServing) -> bool:
    return serving.device.startswith("cuda")


def device_lines(serving: VariantServing, base: DeploySettings) -> tuple[list[str], list[str]]:
    """(behaviour, warnings) about the device the plan's rates hold on and the one deployed."""
    if measured_on_gpu(serving) and not base.gpu:
        _, _, product = serving.device.partition(" (")
        where = f" ({product.rstrip(')')} nodes: pin them with --gpu-type)" if product else ""
        line = (
            f"1 GPU per replica (nvidia.com/gpu): the plan's rates were measured on {serving.device}{where}; "
            "--gpu N asks for more"
        )
        return [line], []
    if base.gpu and not measured_on_gpu(serving):
        return [], [
            f"variant {serving.variant!r} is deployed with {base.gpu} GPU a replica but the plan's rates were "
            f"measured on {serving.device}: its replica counts are a CPU's; profile it where PyTorch sees a GPU "
            "(nb2pipe profile) and plan again"
        ]
    return [], []


def deployed_split(plan: CapacityPlan, variant: str | None = None) -> tuple[DeployedSplit, tuple[VariantServing, ...]]:
    """The fixed split to deploy and each deployed variant's fields, sized for it.

    ``variant``: that variant alone (100 %). Otherwise a plan's only variant, or the fixed
    split with the best objective over the plan's intervals. Each variant's replicas are what its
    share of each interval's forecast needs at its rate under the SLO, rounded up as the plan does,
    so ``maxReplicas`` covers the peak; its other fields are the plan's.
    """
    _check_plan(plan)
    loads = Counter(_load(i.forecast_rps) for i in plan.intervals)
    rates = {o.name: o.rate_per_replica for o in plan.options}
    accuracies = {o.name: o.accuracy for o in plan.options}
    if variant is not None:
        percents, rule = {variant: 100}, f"--variant {variant} takes all the traffic"
    elif len(plan.serving) == 1:
        percents, rule = {plan.serving[0].variant: 100}, "the plan's only variant"
    else:
        percents = best_fixed_split(plan, loads)
        rule = "of all fixed splits, the best for the plan's objective over its intervals"
    entries = []
    replica_intervals = 0
    peak = max(plan.intervals, key=lambda i: (i.forecast_rps, -i.start_s))
    covers_peak = True
    capacity = 0.0
    for entry in plan.serving:
        percent = percents.get(entry.variant, 0)
        if percent <= 0:
            continue
        counts = {load: _replicas(percent, load, rates[entry.variant]) for load in loads}
        replica_intervals += sum(counts[load] * times for load, times in loads.items())
        top = max(counts.values())
        capacity += top * rates[entry.variant]
        covers_peak &= top * rates[entry.variant] >= percent / 100 * peak.forecast_rps - _ROUNDING
        entries.append(replace(entry, min_replicas=min(counts.values()), max_replicas=top, traffic_percent=percent))
    deployed = tuple((e.variant, e.traffic_percent) for e in entries)
    expected = _split_accuracy(deployed, accuracies)
    split = DeployedSplit(
        deployed,
        rule,
        expected,
        plan_accuracy(plan),
        replica_intervals * plan.interval_s / 3600.0,
        plan.replica_hours,
        peak.forecast_rps,
        capacity,
        covers_peak,
        tuple((s.variant, s.traffic_percent) for s in plan.serving),
    )
    return split, tuple(entries)


def best_fixed_split(plan: CapacityPlan, loads: Counter[int]) -> dict[str, int]:
    """Whole percents per variant maximising the plan's objective summed over its intervals.

    Accuracy is linear in the split and every variant's replicas depend on its own share only,
    so the objective is a sum over variants: a knapsack over 0..100 percent, solved exactly.
    """
    options = {o.name: o for o in plan.options}
    intervals = sum(loads.values())
    best: dict[int, tuple[float, int, tuple[int, ...]]] = {0: (0.0, 0, ())}
    for entry in plan.serving:
        option = options[entry.variant]
        gains = []
        for percent in range(101):
            replicas = sum(_replicas(percent, load, option.rate_per_replica) * n for load, n in loads.items())
            accuracy_points = plan.accuracy_value * intervals * (option.accuracy or 0.0) * percent
            gains.append((accuracy_points - replicas, replicas))
        following: dict[int, tuple[float, int, tuple[int, ...]]] = {}
        for total, (score, replicas, chosen) in best.items():
            for percent in range(101 - total):
                gain, more = gains[percent]
                candidate = (score + gain, replicas + more, (*chosen, percent))
                kept = following.get(total + percent)
                # ties (to rounding): fewer replicas, then the first found (the more accurate variants get less)
                if kept is None or (round(candidate[0], 6), -candidate[1]) > (round(kept[0], 6), -kept[1]):
                    following[total + percent] = candidate
        best = following
    _, _, chosen = best[100]
    return {entry.variant: percent for entry, percent in zip(plan.serving, chosen, strict=True)}


def plan_accuracy(plan: CapacityPlan) -> float | None:
    """The schedule's accuracy per request: every interval's split weighted by its forecast load."""
    accuracies = {o.name: o.accuracy for o in plan.options}
    weighted = 0.0
    load = 0.0
    for interval in plan.intervals:
        for share in interval.allocation.shares:
            accuracy = accuracies.get(share.variant)
            if accuracy is None:
                return None
            weighted += interval.forecast_rps * share.traffic * accuracy
        load += interval.forecast_rps
    return weighted / load if load else None


def _check_plan(plan: CapacityPlan) -> None:
    """What sizing needs from a plan file that ``read_plan`` does not check."""
    rates = {o.name: o.rate_per_replica for o in plan.options}
    problems = [] if plan.intervals else ["it has no interval"]
    problems += [
        f"its kserve entry {s.variant!r} is none of its variants" for s in plan.serving if s.variant not in rates
    ]
    problems += [
        f"variant {name!r} carries {rate:g} requests/s per replica" for name, rate in rates.items() if rate <= 0
    ]
    if problems:
        raise Nb2PipeError(
            f"cannot size the deployment from this plan: {'; '.join(problems)}; write it anew with nb2pipe plan"
        )


def _load(forecast_rps: float) -> int:
    """The load the optimizer plans an interval for: its forecast rounded up to a whole request per second."""
    return max(1, math.ceil(forecast_rps - _ROUNDING))


def _replicas(percent: int, load: int, rate: float) -> int:
    if percent <= 0:
        return 0
    return math.ceil(percent / 100 * load / rate - _ROUNDING)


def _split_accuracy(percents: tuple[tuple[str, int], ...], accuracies: dict[str, float | None]) -> float | None:
    values = [accuracies.get(variant) for variant, _ in percents]
    if any(v is None for v in values):
        return None
    return sum(percent / 100 * (value or 0.0) for (_, percent), value in zip(percents, values, strict=True))


def _split_text(percents: tuple[tuple[str, int], ...]) -> str:
    return " / ".join(f"{percent} % {variant}" for variant, percent in percents)


def _signed(value: float | None, digits: int) -> str:
    """``+0.0123``; a difference that rounds to nothing is ``+0`` whatever its sign."""
    shown = round(value or 0.0, digits) + 0.0  # + 0.0: -0.0 becomes 0.0
    return f"{shown:+.{digits}f}"


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def inference_graph(service: str, entries: tuple[VariantServing, ...], namespace: str | None) -> dict[str, Any]:
    """A Splitter over the variants' InferenceServices, weighted by the deployed split."""
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
