"""What KServe does with an InferenceService, read offline from the plain resource dict
(camelCase keys, as nb2pipe's builder writes it and ``kubectl get -o yaml`` shows it).

``admission_problems`` lists what KServe's validating webhook would refuse and what its
reconcilers would silently drop or change; :mod:`kserve_behaviour` says, one line per setting,
what the cluster will do, reading the resource with the helpers at the end of this module. The
webhook's checks of KEDA metrics and of ``spec.canary`` themselves are in :mod:`standard_scaling`.
Rules as read at KServe commit aaac4e29 (v0.20.0-rc0-104; see docs/kserve-rules.md). In the
comments V = pkg/apis/serving/v1beta1, C = pkg/controller/v1beta1/inferenceservice,
K = pkg/constants/constants.go.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from nb2pipe.deploy_checks import LOGGER_BLOB_SCHEMES
from nb2pipe.lifecycle.runtimes import MLSERVER_RUNTIME
from nb2pipe.lifecycle.standard_scaling import KNATIVE_DEFAULT_TARGETS, POD_METRIC, canary_error, keda_metric_error

MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
#: written by nb2pipe: how the mode was chosen (e.g. "assumed: the cluster could not be read")
MODE_SOURCE_ANNOTATION = "nb2pipe.io/deployment-mode-source"
AUTOSCALER_CLASS_ANNOTATION = "serving.kserve.io/autoscalerClass"
KNATIVE_CLASS_ANNOTATION = "autoscaling.knative.dev/class"
KNATIVE_HPA_CLASS = "hpa.autoscaling.knative.dev"
KNATIVE = "Knative"
STANDARD = "Standard"
_LEGACY_MODES = {"Serverless": KNATIVE, "RawDeployment": STANDARD}  # K:573-590 ParseDeploymentMode
_ALLOWED_CLASSES = ("hpa", "external", "keda", "none")  # K:278-284 AutoscalerAllowedClassList: no kpa
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")  # V/inference_service_validation.go:46 IsvcNameFmt
_COMPONENTS = ("predictor", "transformer", "explainer")
IMPLEMENTATIONS: tuple[str, ...] = ("model", "sklearn", "xgboost", "lightgbm", "tensorflow", "pytorch", "triton")
IMPLEMENTATIONS += ("onnx", "huggingface", "pmml", "paddle", "art")  # fields that hold a container
LOGGER_MODES = {"all": "requests and responses", "request": "requests", "response": "responses"}
# the metrics the KPA takes, with Knative's config-autoscaler default targets
KPA_TARGET_DEFAULT = KNATIVE_DEFAULT_TARGETS
_STRATEGY_ONLY_RAW = "customizing deploymentStrategy is only supported for raw deployment mode"
_KEDA_SCALE_METRIC = "ScaleMetric is not supported for KEDA"

# Which autoscaler reads a component's scaling fields (validateAutoScalingCompExtension, V:446-466):
# Standard mode with the class hpa written, or absent (the reconciler's default, K:245-248, but then
# the webhook checks nothing), keda, none, external; Knative mode with the KPA or Knative's HPA class.
HPA_SCALERS = frozenset({"hpa", "hpa-default"})
_STANDARD = frozenset({*HPA_SCALERS, "keda", "none", "external"})
KNATIVE_SCALERS = frozenset({"kpa", "knative-hpa"})


def deployment_mode(resource: Mapping[str, Any]) -> str | None:
    """Knative or Standard from the annotation (legacy names mapped), the raw value if unknown, None if absent."""
    raw = annotations_of(resource).get(MODE_ANNOTATION)
    return None if raw is None else _LEGACY_MODES.get(raw, raw)


def recorded_mode(resource: Mapping[str, Any]) -> str | None:
    """The mode KServe runs a created service in (``status.deploymentMode``, legacy names mapped);
    None before its first reconcile."""
    raw = (resource.get("status") or {}).get("deploymentMode")
    return _LEGACY_MODES.get(raw, raw) if raw else None


@dataclass(frozen=True)
class Component:
    """One of predictor / transformer / explainer, and the autoscaler that reads its fields
    (None while the mode is unknown)."""

    role: str
    spec: Mapping[str, Any]
    scaler: str | None

    @property
    def label(self) -> str:
        return "" if self.role == "predictor" else f"{self.role}: "

    def number(self, key: str) -> int | None:
        value = self.spec.get(key)
        return None if value is None else int(value)

    @property
    def metric(self) -> str:
        """What the autoscaler scales on: scaleMetric, else cpu for an HPA, concurrency for the KPA."""
        return str(self.spec.get("scaleMetric") or ("concurrency" if self.scaler == "kpa" else "cpu"))


def _refused(c: Component, what: str, quote: str, advice: str) -> str:
    """A webhook refusal, with KServe's own message."""
    return f'{c.label}{what}: KServe refuses it ("{quote}"); {advice}'


# --- checks on each component -------------------------------------------------------------------


def _min_above_max(c: Component) -> str | None:  # validateReplicas: min defaults to 1, max 0 = unset
    low, high = c.number("minReplicas"), c.number("maxReplicas") or 0
    if high > 0 and (1 if low is None else low) > high:
        what = f"minReplicas {'1 (the default)' if low is None else low} above maxReplicas {high}"
        return _refused(c, what, "'MinReplicas' cannot be greater than MaxReplicas", "raise maxReplicas")
    return None


def _logger_mode(c: Component) -> str | None:  # V/component.go:400-413 validateLogger: "" is refused
    logger = c.spec.get("logger")
    if logger is None or logger.get("mode") in LOGGER_MODES:
        return None
    what = "logger without a mode" if logger.get("mode") is None else f"logger mode {logger['mode']!r}"
    return _refused(c, what, "invalid logger type", "write mode all, request or response")


def _logger_storage(c: Component) -> str | None:  # validateLogger
    storage = (c.spec.get("logger") or {}).get("storage")
    missing = [key for key in ("path", "parameters", "key") if storage is not None and storage.get(key) is None]
    if missing:
        what = f"logger storage without {', '.join(missing)}"
        return _refused(c, what, "invalid logger storage configuration", "give path, parameters and key")
    return None


def _logger_sink(c: Component) -> str | None:  # pkg/logger/store.go:46-61, cmd/agent/main.go:325-361
    url = (c.spec.get("logger") or {}).get("url")
    if not url or url.startswith(("http://", "https://")):
        return None
    if url.startswith("s3a://"):
        return f"{c.label}logger url {url}: KServe's logger agent has no s3a storage provider and fails; write s3://"
    if not url.startswith(tuple(f"{scheme}://" for scheme in LOGGER_BLOB_SCHEMES)):
        return (
            f"{c.label}logger url {url}: KServe's logger POSTs anything but s3://, gs:// and abfs:// as CloudEvents, "
            "so these payloads are lost; use an http(s) sink or a blob store"
        )
    if not ((c.spec.get("logger") or {}).get("storage") or {}).get("path"):
        return (
            f"{c.label}logger url {url} without storage.path: KServe's agent drops every batch (\"Logger store not "
            'configured, cannot store batch"); give storage path, parameters and key'
        )
    return None


def _hpa_metric(c: Component) -> str | None:  # validateScalingHPACompExtension (V:527-565), getHPAMetrics
    metric = c.metric
    if metric in ("cpu", "memory"):
        return None
    quote = f"[{metric}] is not a supported metric"
    if c.scaler == "knative-hpa":
        where = f"scale:{metric} under {KNATIVE_CLASS_ANNOTATION}: {KNATIVE_HPA_CLASS}"
        return _refused(c, where, quote, f"drop that annotation to scale on {metric} with the KPA, or scale:cpu")
    if c.scaler == "hpa":
        return _refused(c, f"scale:{metric} in Standard mode with the HPA", quote, "use mode:knative, or scale:cpu")
    # no explicit class: admitted, then C/reconcilers/hpa/hpa_reconciler.go:105-146 writes no metric
    return (
        f"{c.label}scale:{metric} has no effect in Standard mode with the HPA (KServe writes no HPA metric for it, "
        "so the HPA scales on cpu 80%): use mode:knative, or scale:cpu"
    )


def _utilization_target(c: Component) -> str | None:  # validateScalingHPACompExtension
    target, metric = c.number("scaleTarget"), c.metric
    if target is None or metric not in ("cpu", "memory") or 1 <= target <= 100:
        return None
    memory_floor = metric == "memory" and target < 1
    quote = "the target memory should be greater than 1 MiB" if memory_floor else ""
    quote = quote or "the target utilization percentage should be a [1-100] integer"
    return _refused(c, f"scale:{metric}:{target}", quote, f"the target is a percentage of the {metric} request, 1-100")


def _memory_without_target(c: Component) -> str | None:  # getHPAMetrics: memory needs scaleTarget
    if c.metric == "memory" and c.spec.get("scaleTarget") is None and not c.spec.get("autoScaling"):
        return (
            f"{c.label}scale:memory without a target has no effect with the HPA (KServe writes no HPA metric, so "
            "the HPA scales on cpu 80%): give a target, a percentage of the memory request (scale:memory=70)"
        )
    return None


def _min_zero_under_hpa(c: Component) -> str | None:  # createHPA (hpa_reconciler.go:149-182): min < 1 -> 1
    if c.number("minReplicas") == 0:
        return (
            f"{c.label}minReplicas 0 silently becomes 1 in Standard mode with the HPA, which cannot scale to "
            "zero: use mode:knative to scale to zero, or minReplicas 1"
        )
    return None


def _max_unset_under_hpa(c: Component) -> str | None:  # createHPA: max < min -> max = min
    asks_scaling = any(c.spec.get(key) is not None for key in ("minReplicas", "scaleMetric", "scaleTarget"))
    if not c.number("maxReplicas") and (asks_scaling or c.spec.get("autoScaling")):
        low = max(1, c.number("minReplicas") or 1)
        return (
            f"{c.label}maxReplicas is not set: the HPA's maximum becomes the minimum ({low}), so it never scales; "
            f"set maxReplicas (replicas:{low}:N)"
        )
    return None


def _hpa_metric_sources(c: Component) -> str | None:  # validateScalingHPACompExtension; getHPAMetrics skips
    for metric in (c.spec.get("autoScaling") or {}).get("metrics") or []:
        kind = metric.get("type")
        if kind == "Resource" and metric.get("resource") is None:
            quote = "metricSpec.Resource is not set for resource metric source type"
            return _refused(c, "autoScaling Resource metric without resource", quote, "name cpu or memory")
        if kind != "Resource":
            what, advice = f"autoScaling {kind} metric under the HPA", f"use {AUTOSCALER_CLASS_ANNOTATION}: keda"
            if c.scaler == "hpa":
                quote = f"invalid HPA metric source type with value [{kind}],valid metric source types are Resource"
                return _refused(c, what, quote, advice)
            return f"{c.label}{what} is skipped silently: {advice}"
    return None


def _kpa_metric(c: Component) -> str | None:  # validateScalingKPACompExtension (V:645-668)
    metric = c.metric
    if metric in KPA_TARGET_DEFAULT:
        return None
    advice = (
        f"the Knative Pod Autoscaler scales on concurrency or rps: use scale:concurrency or scale:rps, "
        f"mode:standard for {metric}, or the annotation {KNATIVE_CLASS_ANNOTATION}: {KNATIVE_HPA_CLASS}"
    )
    return _refused(c, f"scale:{metric} in Knative mode", f"[{metric}] is not a supported metric", advice)


def _rps_target(c: Component) -> str | None:  # validateScalingKPACompExtension: 1 itself is accepted
    target = c.number("scaleTarget")
    if c.metric == "rps" and target is not None and target < 1:
        quote, advice = "the target for rps should be greater than 1", "the target is requests per second per replica"
        return _refused(c, f"scale:rps:{target}", quote, f"{advice}, at least 1")
    return None


def _keda_metrics(c: Component) -> str | None:
    metrics = (c.spec.get("autoScaling") or {}).get("metrics") or []
    for metric in metrics:
        quote = keda_metric_error(metric)
        if quote:
            return _refused(c, f"autoScaling {metric.get('type')} metric under KEDA", quote, "see KServe's KEDA docs")
    if not metrics:  # keda_reconciler.go getKedaMetrics: a ScaledObject without triggers
        return (
            f"{c.label}{AUTOSCALER_CLASS_ANNOTATION}: keda without autoScaling.metrics gives KEDA no trigger, so "
            "nothing scales: give a metric (nb2pipe writes one for scale:rps or scale:concurrency)"
        )
    return None


def _keda_triggers(c: Component) -> str | None:  # what KServe admits and KEDA then cannot use
    runtime = (c.spec.get("model") or {}).get("runtime")
    for metric in (c.spec.get("autoScaling") or {}).get("metrics") or []:
        source = (metric.get("external") or {}).get("metric") or {}
        query = str(source.get("query") or "")
        if metric.get("type") == "External" and metric.get("external") and not source.get("serverAddress"):
            return f"{c.label}KEDA trigger without serverAddress: KEDA cannot ask Prometheus; give --prometheus-url"
        if POD_METRIC in query and runtime == MLSERVER_RUNTIME:
            return (
                f"{c.label}the KEDA query reads {POD_METRIC}, which MLServer does not export: give --scale-query with "
                "MLServer's metric, or another runtime"
            )
        if POD_METRIC in query and c.number("minReplicas") == 0:
            return (
                f"{c.label}minReplicas 0 with KEDA on {POD_METRIC}: no pod reports it while none runs, so the "
                "service never scales up again: give --scale-query with a metric that exists at zero replicas "
                "(the ingress's request rate), or keep at least 1 replica"
            )
    return None


#: (the autoscalers it applies under, None = all; field; when refused; KServe's message; what to do)
_REFUSED_FIELDS: tuple[tuple[frozenset[str] | None, str, Callable[[Any], bool], str, str], ...] = (
    # V/component.go:341-388 validateContainerConcurrency, validateReplicas
    (None, "containerConcurrency", lambda value: value < 0, "parallelism cannot be less than 0", "0 means no limit"),
    (None, "minReplicas", lambda value: value < 0, "'MinReplicas' cannot be less than 0", "use 0 or more"),
    (None, "maxReplicas", lambda value: value < 0, "'MaxReplicas' cannot be less than 0", "use 0 (no maximum) or more"),
    # V:645-668 validateScalingKPACompExtension, V:567-634 validateScalingKedaCompExtension
    (KNATIVE_SCALERS, "deploymentStrategy", lambda _: True, _STRATEGY_ONLY_RAW, "drop it, or use mode:standard"),
    (frozenset({"keda"}), "scaleMetric", lambda _: True, _KEDA_SCALE_METRIC, "use autoScaling.metrics"),
)
#: (the autoscalers it applies under, None = all; field; why it has no effect; what to do): fields
#: KServe admits and then never reads
_IGNORED_FIELDS: tuple[tuple[frozenset[str] | None, str, str, str], ...] = (
    # V/component.go:99-101: declared, read nowhere in pkg/
    (None, "scaleMetricType", "KServe reads it nowhere", "remove it"),
    # keda_reconciler.go reads only autoScaling; the webhook checks scaleTarget under keda not at all
    (frozenset({"keda"}), "scaleTarget", "KEDA reads only autoScaling.metrics", "put the target there"),
    # read only by C/reconcilers/knative/ksvc_reconciler.go:130-145
    (_STANDARD, "canaryTrafficPercent", "in Standard mode: only Knative splits traffic", "use mode:knative or drop it"),
    # read only by the raw reconcilers (hpa_reconciler.go, keda_reconciler.go)
    (
        KNATIVE_SCALERS,
        "autoScaling",
        "in Knative mode: only Standard mode's HPA and KEDA read it",
        "use scale:METRIC:TARGET, or mode:standard",
    ),
)


def _refused_fields(c: Component) -> list[str]:
    return [
        _refused(c, _shown(field, c.spec[field]), quote, advice)
        for when, field, refused, quote, advice in _REFUSED_FIELDS
        if c.spec.get(field) is not None and (when is None or c.scaler in when) and refused(c.spec[field])
    ]


def _ignored_fields(c: Component) -> list[str]:
    return [
        f"{c.label}{_shown(field, c.spec[field])} has no effect ({why}): {advice}"
        for when, field, why, advice in _IGNORED_FIELDS
        if c.spec.get(field) is not None and (when is None or c.scaler in when)
    ]


def _shown(field: str, value: Any) -> str:
    return f"{field} {value}" if isinstance(value, int | str) else field


#: (the autoscalers a check applies under, None = every mode; the check), in the order reported
_COMPONENT_RULES: tuple[tuple[frozenset[str] | None, Callable[[Component], str | None]], ...] = (
    (None, _min_above_max),
    (None, _logger_mode),
    (None, _logger_storage),
    (None, _logger_sink),
    (HPA_SCALERS | {"knative-hpa"}, _hpa_metric),
    (HPA_SCALERS | {"knative-hpa"}, _utilization_target),
    (HPA_SCALERS, _memory_without_target),
    (HPA_SCALERS, _min_zero_under_hpa),
    (HPA_SCALERS, _max_unset_under_hpa),
    (HPA_SCALERS, _hpa_metric_sources),
    (frozenset({"kpa"}), _kpa_metric),
    (frozenset({"kpa"}), _rps_target),
    (frozenset({"keda"}), _keda_metrics),
    (frozenset({"keda"}), _keda_triggers),
)


# --- checks on the whole resource ---------------------------------------------------------------


def _name(resource: Mapping[str, Any]) -> str | None:  # validateInferenceServiceName, V/component.go:44
    name = str((resource.get("metadata") or {}).get("name") or "")
    if _NAME.match(name):
        return None
    return (
        f'the InferenceService "{name}" is invalid: a InferenceService name must consist of lower case alphanumeric '
        "characters or '-', and must start with alphabetical character. "
        f'(e.g. "my-name" or "abc-123", regex used for validation is \'{_NAME.pattern[1:-1]}\')'
    )


def _mode(resource: Mapping[str, Any]) -> str | None:  # GetDeploymentMode (C/utils/utils.go:224-248)
    mode = deployment_mode(resource)
    if mode is None:
        return (
            f"no {MODE_ANNOTATION} annotation: the cluster's default mode decides (Knative on a stock "
            "install); write Knative or Standard"
        )
    if mode in (KNATIVE, STANDARD):
        return None
    why = "KServe admits any value, but its controller ignores an unknown one and uses the cluster's default"
    if mode == "ModelMesh":
        why = "ModelMesh serves through a ModelMesh install, not through KServe's predictor controller"
    return f"{MODE_ANNOTATION}: {mode!r} is not a mode nb2pipe deploys with ({why}): write Knative or Standard"


def _autoscaler_class(resource: Mapping[str, Any]) -> str | None:  # validateInferenceServiceAutoscaler
    value = annotations_of(resource).get(AUTOSCALER_CLASS_ANNOTATION)
    if value is None or value in _ALLOWED_CLASSES:
        return None
    return (
        f'{AUTOSCALER_CLASS_ANNOTATION}: {value}: KServe refuses it ("[{value}] is not a supported autoscaler class '
        f'type"); the classes are {", ".join(_ALLOWED_CLASSES)}, and Knative mode takes none'
    )


def _class_in_knative(resource: Mapping[str, Any]) -> str | None:  # only the raw reconcilers read the class
    value = annotations_of(resource).get(AUTOSCALER_CLASS_ANNOTATION)
    if deployment_mode(resource) == KNATIVE and value in _ALLOWED_CLASSES:
        return (
            f"{AUTOSCALER_CLASS_ANNOTATION}: {value} has no effect in Knative mode (Knative's own autoscaler "
            f"scales, chosen by {KNATIVE_CLASS_ANNOTATION}): remove it, or use mode:standard"
        )
    return None


def _python_path(resource: Mapping[str, Any]) -> str | None:  # validateBlockedEnvVars (V:302-354)
    spec = resource.get("spec") or {}
    for role in _COMPONENTS:
        component, worker = spec.get(role) or {}, (spec.get(role) or {}).get("workerSpec") or {}
        containers = [*(component.get("containers") or []), *(component.get("initContainers") or [])]
        containers += [*(worker.get("containers") or []), *(worker.get("initContainers") or [])]
        containers += [component[key] for key in IMPLEMENTATIONS if isinstance(component.get(key), Mapping)]
        for container in containers:
            if any(env.get("name") == "PYTHONPATH" for env in container.get("env") or []):
                return (
                    f'the InferenceService "{(resource.get("metadata") or {}).get("name", "")}" is invalid: setting '
                    f'PYTHONPATH in container "{container.get("name", "")}" is not allowed for security reasons'
                )
    return None


def _canary_outside_standard(resource: Mapping[str, Any]) -> str | None:  # validateCanarySpecs (V:183-266)
    if (resource.get("spec") or {}).get("canary") and deployment_mode(resource) != STANDARD:
        return (
            'spec.canary outside Standard mode: KServe refuses it ("canary is only supported in Standard deployment '
            'mode"); in Knative mode use canaryTrafficPercent (canary:PERCENT)'
        )
    return None


def _canary_specs(resource: Mapping[str, Any]) -> str | None:  # validateCanarySpecs, after the mode
    spec = resource.get("spec") or {}
    canaries, stable = spec.get("canary") or [], spec.get("predictor") or {}
    if not canaries or deployment_mode(resource) != STANDARD:
        return None
    has_storage = any(isinstance(stable.get(key), Mapping) and stable[key].get("storageUri") for key in IMPLEMENTATIONS)
    has_model = has_storage or bool(stable.get("model"))
    quote = canary_error(canaries, stable, has_model=has_model, implementations=IMPLEMENTATIONS)
    if quote:
        return f'spec.canary: KServe refuses it ("{quote}")'
    name = str((resource.get("metadata") or {}).get("name") or "")
    for canary in canaries:  # the reconciler names its Service {isvc}-{name}-predictor, a DNS label
        service = f"{name}-{canary['predictor']['name']}-predictor"
        if len(service) > 63:
            return f"canary Service {service} is longer than 63 characters: Kubernetes refuses it; shorten the name"
    return None


def admission_problems(resource: Mapping[str, Any]) -> list[str]:
    """What KServe's webhook would refuse, or a reconciler silently drop or change; [] when fine."""
    found = [check(resource) for check in (_name, _mode, _autoscaler_class, _class_in_knative, _python_path)]
    for component in _components(resource):
        found += _refused_fields(component)
        found += [check(component) for when, check in _COMPONENT_RULES if when is None or component.scaler in when]
        found += _ignored_fields(component)
    found.append(_canary_outside_standard(resource))  # the webhook checks spec.canary after the components
    found.append(_canary_specs(resource))
    return [problem for problem in found if problem]


# --- reading the resource -----------------------------------------------------------------------


def annotations_of(resource: Mapping[str, Any]) -> Mapping[str, str]:
    return (resource.get("metadata") or {}).get("annotations") or {}


def scaler_of(resource: Mapping[str, Any], component: Mapping[str, Any] | None = None) -> str | None:
    """The autoscaler of a component: in Standard mode its own class annotation wins over the
    service's (KServe merges them, component first, into what the raw reconcilers read)."""
    annotations, mode = annotations_of(resource), deployment_mode(resource)
    if mode == KNATIVE:
        return "knative-hpa" if annotations.get(KNATIVE_CLASS_ANNOTATION) == KNATIVE_HPA_CLASS else "kpa"
    if mode == STANDARD:
        own = ((component or {}).get("annotations") or {}).get(AUTOSCALER_CLASS_ANNOTATION)
        value = own or annotations.get(AUTOSCALER_CLASS_ANNOTATION)
        return "hpa-default" if value is None else value if value in _ALLOWED_CLASSES else None
    return None


def _components(resource: Mapping[str, Any]) -> list[Component]:
    spec = resource.get("spec") or {}
    return [Component(role, spec[role], scaler_of(resource, spec[role])) for role in _COMPONENTS if spec.get(role)]
