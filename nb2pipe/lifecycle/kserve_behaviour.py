"""What KServe will do with an InferenceService, one plain line per setting: the mode, the
autoscaler, replicas, canary, resources (and the nodes they need), logger, batcher and
explainer (``nb2pipe deploy --dry-run`` prints them). Read offline from the resource dict, as
:mod:`kserve_rules` reads it; KServe's rules are in docs/kserve-rules.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nb2pipe.deploy_checks import GPU_PRODUCT_LABEL
from nb2pipe.lifecycle.kserve_rules import (
    HPA_SCALERS,
    IMPLEMENTATIONS,
    KNATIVE,
    KNATIVE_SCALERS,
    KPA_TARGET_DEFAULT,
    LOGGER_MODES,
    MODE_ANNOTATION,
    MODE_SOURCE_ANNOTATION,
    STANDARD,
    Component,
    annotations_of,
    deployment_mode,
    scaler_of,
)
from nb2pipe.lifecycle.standard_scaling import canary_replicas, request_query_metric, storage_of

# defaults KServe leaves to others: HPA cpu 80 % (K:298-301 DefaultCPUUtilization), the agent's
# batcher (cmd/agent/main.go:81-82)
HPA_CPU_DEFAULT = 80
_BATCH_SIZE_DEFAULT, _BATCH_LATENCY_MS_DEFAULT = 32, 5000


def effective_behaviour(
    resource: Mapping[str, Any], *, gateway_api: bool | None = None, pending_canary: str | None = None
) -> list[str]:
    """One plain line each: mode, autoscaler, replicas, canary, resources (and nodes), logger, batcher, explainer.
    ``gateway_api``: the cluster's ``ingress.enableGatewayApi`` (None: not read), which Standard-mode
    canary weights need; ``pending_canary``: what happens to a canary nb2pipe could not write yet."""
    spec = resource.get("spec") or {}
    predictor = Component("predictor", spec.get("predictor") or {}, scaler_of(resource))
    canaries = spec.get("canary") or []
    canary = _spec_canary_line(predictor, canaries, gateway_api) if canaries else _canary_line(predictor)
    return [
        _mode_line(resource),
        _keda_line(resource, predictor) if predictor.scaler == "keda" else _autoscaler_line(predictor),
        _replicas_line(predictor),
        pending_canary or canary,
        _resources_line(predictor.spec) + _placement(predictor.spec),
        _logger_line(predictor.spec.get("logger"), resource.get("metadata") or {}),
        _batcher_line(predictor.spec.get("batcher")),
        _explainer_line((resource.get("spec") or {}).get("explainer")),
    ]


def _mode_line(resource: Mapping[str, Any]) -> str:
    raw, mode = annotations_of(resource).get(MODE_ANNOTATION), deployment_mode(resource)
    if mode is None:
        return "mode not set: the cluster's default decides (Knative on a stock install)"
    if mode not in (KNATIVE, STANDARD):
        return f"mode {mode!r} unknown: KServe's controller uses the cluster's default"
    how = f"annotation {MODE_ANNOTATION}" + (f" {raw}, KServe's legacy name" if raw != mode else "")
    source = annotations_of(resource).get(MODE_SOURCE_ANNOTATION)
    return f"mode {mode} ({how}{'; ' + source if source else ''})"


def _autoscaler_line(c: Component) -> str:
    target, concurrency = c.number("scaleTarget"), c.number("containerConcurrency")
    if c.scaler in KNATIVE_SCALERS:
        if c.scaler == "knative-hpa":
            # Knative's HPA class reads a cpu target as % of the request, a memory target as MiB a replica
            amount = "" if target is None else (f"{target} MiB " if c.metric == "memory" else f"{target}% ")
            line = f"scale on {c.metric} {amount}via Knative's HPA class"
        elif c.metric not in KPA_TARGET_DEFAULT:
            line = f"scale on {c.metric}: refused in Knative mode (see the problems)"
        elif c.spec.get("scaleMetric") is None and target is None:
            line = "KServe default: scale on concurrency 100 per replica via the Knative Pod Autoscaler"
        else:
            shown = f"{KPA_TARGET_DEFAULT[c.metric]} (Knative's default)" if target is None else target
            line = f"scale on {c.metric} {shown} per replica via the Knative Pod Autoscaler"
        limit = f"; at most {concurrency} requests at once per replica" if concurrency else "; no request limit"
        return line + (limit if concurrency is not None else "")
    if c.scaler not in HPA_SCALERS:
        return _OTHER_AUTOSCALERS[c.scaler or ""]
    ignored = f"; containerConcurrency {concurrency} has no effect in Standard mode" if concurrency is not None else ""
    if (c.spec.get("autoScaling") or {}).get("metrics"):
        line = "scale via the HPA on the metrics in autoScaling"
    elif c.metric == "cpu":
        default = c.spec.get("scaleMetric") is None and target is None
        line = f"{'KServe default: ' if default else ''}scale on cpu {target or HPA_CPU_DEFAULT}% via the HPA"
    elif c.metric == "memory" and target is not None:
        line = f"scale on memory {target}% of the request via the HPA"
    else:
        line = f"scale:{c.metric} gives the HPA no metric: it scales on cpu {HPA_CPU_DEFAULT}% (see the problems)"
    return line + ignored


def _keda_line(resource: Mapping[str, Any], c: Component) -> str:
    """What KEDA scales on: nb2pipe's queries by name, any other query as written."""
    service = str((resource.get("metadata") or {}).get("name") or "")
    lines = []
    for metric in (c.spec.get("autoScaling") or {}).get("metrics") or []:
        external = metric.get("external") or {}
        source, target = external.get("metric") or {}, (external.get("target") or {}).get("value")
        if metric.get("type") != "External" or source.get("backend") != "prometheus":
            lines.append(f"a {metric.get('type')} metric")
            continue
        query = str(source.get("query") or "")
        metric_name = request_query_metric(query, service)
        what = f"{metric_name} {target}" if metric_name else f"the query's value {target}"
        where = f"Prometheus {source.get('serverAddress') or 'unset'}, query {query}"
        lines.append(f"{what} per replica ({where})")
    return "scale via KEDA on " + ("; ".join(lines) if lines else "nothing: no autoScaling metric (see the problems)")


_OTHER_AUTOSCALERS = {
    "keda": "scale via KEDA on the metrics in autoScaling",
    "none": "no autoscaler (class none): the replicas stay at minReplicas",
    "external": "no KServe autoscaler (class external): an autoscaler of your own sets the replicas",
    "": "autoscaler: unknown until the mode and class are valid (see the problems)",
}


def _replicas_line(c: Component) -> str:
    low, high = c.number("minReplicas"), c.number("maxReplicas") or 0
    if c.scaler in HPA_SCALERS:  # createHPA: min at least 1, max at least min
        floor = max(1, 1 if low is None else low)
        note = " (minReplicas 0 becomes 1 under the HPA)" if low == 0 else ""
        if high <= floor:
            return f"replicas {floor}, fixed: " + ("maxReplicas is not set" if not high else "max = min") + note
        return f"replicas {floor}-{high}{note}"
    if c.scaler == "external":
        return "replicas: set by the external autoscaler"
    low = 1 if low is None else low
    if c.scaler is None:
        return f"replicas {low} to {high or 'unset'} as written: what they mean depends on the mode"
    if c.scaler == "none":
        return f"replicas {low}, fixed"
    if c.scaler in KNATIVE_SCALERS and not high:  # no max-scale annotation: Knative's own limit
        span = f"replicas {low} up to Knative's global maximum"
    else:  # Knative with max-scale, or KEDA (max raised to min, keda_reconciler.go:233-235)
        span = f"replicas {low}, fixed" if max(high, low) == low else f"replicas {low}-{high}"
    zero = ", scale to zero allowed" if low == 0 and c.scaler in KNATIVE_SCALERS else ""
    if low == 0 and c.scaler == "keda":
        zero = ", scale to zero via KEDA: requests fail while no replica runs (no activator in Standard mode)"
    return span + zero


def _canary_line(c: Component) -> str:
    percent = c.number("canaryTrafficPercent")
    if percent is None:
        return "no canary: each rollout takes all traffic once ready"
    if c.scaler is None:
        return f"canary {percent}%: Knative splits traffic between revisions, Standard mode ignores it"
    if c.scaler in KNATIVE_SCALERS:
        return (
            f"canary {percent}% of traffic to the new revision, {100 - percent}% to the previous one "
            "(from the second rollout on; the first takes all)"
        )
    return f"canaryTrafficPercent {percent} is ignored in Standard mode: each rollout takes all traffic"


def _spec_canary_line(stable: Component, canaries: list[Mapping[str, Any]], gateway_api: bool | None) -> str:
    """Standard mode's spec.canary (KServe 0.20): fixed replicas beside the stable predictor."""
    parts, total = [], 0
    for canary in canaries:
        percent, predictor = int(canary.get("trafficPercent") or 0), canary.get("predictor") or {}
        total += percent
        replicas = predictor.get("minReplicas")
        replicas = canary_replicas(stable.number("minReplicas"), percent) if replicas is None else replicas
        parts.append(
            f"canary {percent}% to {predictor.get('name')} ({replicas} fixed replica{'' if replicas == 1 else 's'})"
        )
    stable_model = storage_of(stable.spec) or "its model"
    line = f"{', '.join(parts)}, the stable predictor ({stable_model}) keeps {100 - total}%"
    if gateway_api is None:
        return line + "; weights apply only with the Gateway API (inferenceservice-config ingress.enableGatewayApi)"
    if gateway_api:
        return line + " (this cluster routes through the Gateway API, which applies the weights)"
    return line + (
        "; this cluster's inferenceservice-config has ingress.enableGatewayApi false, so the canary runs but "
        "gets no traffic"
    )


def _resources_line(predictor: Mapping[str, Any]) -> str:
    containers = [predictor[key] for key in IMPLEMENTATIONS if isinstance(predictor.get(key), Mapping)]
    resources = (containers + list(predictor.get("containers") or []) + [{}])[0].get("resources") or {}
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    if not requests and not limits:
        return "resources: the serving runtime's defaults, no GPU"
    if requests == limits:
        return f"resources: {_quantities(requests)} (requests = limits)"
    return f"resources: requests {_quantities(requests) or 'none'}; limits {_quantities(limits) or 'none'}"


def _placement(predictor: Mapping[str, Any]) -> str:
    """Which nodes take the pods, after the resources: nothing when the predictor names no labels or tolerations."""
    selector, tolerations = predictor.get("nodeSelector") or {}, predictor.get("tolerations") or []
    if not selector and not tolerations:
        return ""
    parts = []
    if selector:
        labels = ", ".join(f"{key}={value}" for key, value in selector.items())
        where = f"only on nodes labelled {labels}"
        if GPU_PRODUCT_LABEL in selector:  # gpu_placement wrote a product name as GFD writes it
            where += (
                " (the label NVIDIA's GPU Feature Discovery gives GPU nodes: the GPU's name with spaces as '-', "
                "which is how nb2pipe writes a name given as PyTorch or nvidia-smi print it; "
                f"kubectl get nodes -L {GPU_PRODUCT_LABEL} shows each node's)"
            )
        parts.append(where)
    if tolerations:
        parts.append(f"pods tolerate the taint{'s' if len(tolerations) > 1 else ''} {_taints(tolerations)}")
    return "; " + "; ".join(parts)


def _taints(tolerations: list[Mapping[str, Any]]) -> str:
    shown = []
    for toleration in tolerations:
        key = toleration.get("key") or "(every key)"
        value = "" if toleration.get("operator") == "Exists" else f"={toleration.get('value') or ''}"
        shown.append(f"{key}{value}:{toleration.get('effect') or '(every effect)'}")
    return ", ".join(shown)


def _quantities(amounts: Mapping[str, Any]) -> str:
    plain = ("cpu", "memory", "ephemeral-storage")
    accelerators = [f"{value} {name}" for name, value in amounts.items() if name not in plain]
    return ", ".join(accelerators + [f"{name} {amounts[name]}" for name in plain if name in amounts])


def _logger_line(logger: Mapping[str, Any] | None, metadata: Mapping[str, Any]) -> str:
    if logger is None:
        return "payload logger: off"
    what = LOGGER_MODES.get(logger.get("mode") or "", f"refused mode {logger.get('mode')!r}")
    url, storage = logger.get("url"), logger.get("storage") or {}
    if url and storage.get("path"):  # pkg/logger/store.go getObjectPrefix: URL/<ns>/<service>/<component>/<path>
        namespace = metadata.get("namespace") or "<namespace>"
        where = f"{url.rstrip('/')}/{namespace}/{metadata.get('name')}/predictor/{storage['path']}"
        account = storage.get("serviceAccountName") or "logger-sa"
        return f"payload logger: {what} as JSON objects under {where} (credentials: ServiceAccount {account})"
    sink = url or "the cluster's default sink (inferenceservice-config logger.defaultUrl)"
    return f"payload logger: {what} to {sink}"


def _batcher_line(batcher: Mapping[str, Any] | None) -> str:
    if batcher is None:
        return "batcher: off"
    size = batcher.get("maxBatchSize") or _BATCH_SIZE_DEFAULT
    wait = batcher.get("maxLatency") or _BATCH_LATENCY_MS_DEFAULT
    return f"batcher: up to {size} requests per batch, waiting at most {wait} ms"


def _explainer_line(explainer: Mapping[str, Any] | None) -> str:
    if not explainer:
        return "explainer: none"
    container = (explainer.get("containers") or [{}])[0]
    methods = [arg.split("=", 1)[1] for arg in container.get("args") or [] if arg.startswith("--explainer=")]
    return f"explainer: {container.get('image') or 'KServe built-in'} answers :explain" + (
        f" ({methods[0]})" if methods else ""
    )
