"""What Standard mode needs to do what Knative does: KEDA for rps, concurrency and scale to
zero, and ``spec.canary`` (KServe 0.20) for canaries. Pure functions over settings and the
plain resource dicts; the cluster is read by :mod:`nb2pipe.lifecycle.cluster`.

**KEDA.** ``serving.kserve.io/autoscalerClass: keda`` and one ``External`` metric in
``spec.predictor.autoScaling``, backend ``prometheus``. KServe copies it into a KEDA
ScaledObject trigger with ``threshold`` = the target's value and no ``metricType``
(keda_reconciler.go getKedaMetrics), so KEDA's default, ``AverageValue``, applies: the HPA
divides the query's total by the replica count, and "rps 700" means 700 per replica, as with
Knative's KPA. The queries (``scale_query`` replaces them):

- rps: ``sum(rate(request_predict_seconds_count{namespace="NS",model_name="SERVICE"}[1m]))``,
  the predict calls per second over every replica. KServe's Python servers (sklearn, xgboost, lightgbm,
  predictive) and nb2pipe's own server (a ``kserve.Model`` behind KServe's ``ModelServer``)
  time each predict call in that histogram (kserve/metrics.py), labelled with the model's
  name, which is the service's (``--model_name={{.Name}}`` in KServe's runtimes,
  ``--name={{.Name}}`` in nb2pipe's).
- concurrency: ``sum(rate(request_predict_seconds_sum{namespace="NS",model_name="SERVICE"}[1m]))``. By
  Little's law the mean number of requests in flight is the arrival rate times the mean time
  in the system, rate(_count) x (rate(_sum) / rate(_count)) = rate(_sum): the seconds of
  predict work done per second is the mean number of predict calls running. It counts the
  predict step only (KServe's pre- and postprocessing of these servers is trivial) and no
  queueing in front of it.

The model name is the service's in every namespace, so the queries also select the namespace
the service runs in (``deploy.render`` resolves it as applying does): without it two services of
one name (staging and prod) would scale on their traffic summed. Prometheus puts the scraped
pod's namespace in the ``namespace`` label (the prometheus-community chart's ``kubernetes-pods``
job, and the Prometheus Operator's PodMonitors and ServiceMonitors); older configurations used
``kubernetes_namespace``: ``prometheus_namespace_label`` names it, "" leaves the namespace out.

Both read metrics the pods export, so Prometheus must scrape them. KServe's own switch
(``serving.kserve.io/enable-prometheus-scraping`` or the cluster's
``metricsAggregator.enablePrometheusScraping``) points ``prometheus.io/port`` at 9091, the
queue-proxy's port, which only Knative pods have; so nb2pipe writes the conventional
``prometheus.io/scrape|port|path`` annotations itself, for the server's port (8080; MLServer
8082), and turns KServe's switch off for the service so it cannot overwrite them. They reach
the pods (KServe copies the service's annotations to the Deployment's pod template); a
Prometheus with the usual ``kubernetes-pods`` scrape job reads them.

**Scale to zero.** With no pod running, a metric the pods export is absent, KEDA reads it as
0 and never scales up again; and Standard mode has no activator to hold the first request.
So minReplicas 0 in Standard mode needs ``scale_query``: a metric that exists at zero replicas
(the ingress's or gateway's request count for the service). Without one nb2pipe refuses.

**Canary.** KServe 0.20's ``spec.canary`` runs each canary as its own Deployment with fixed
replicas (ceil(stable minReplicas x percent / 100)) beside the stable predictor, and splits
traffic by weight only through the Gateway API's HTTPRoute. A canary routes a share to the
NEW model while the stable predictor keeps the model it serves now: :func:`with_canary` keeps
the running service's model under ``spec.predictor`` (with this deployment's scaling) and
puts the new model in ``spec.canary``. Promotion (``canary:100``, or a deployment without a
canary while one runs) is KServe's documented one: :func:`promoted` makes the new model the
predictor, named as the canary that already serves it (its Deployment is kept, no restart),
and drops the canary entry.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nb2pipe.ir import DeploySettings
from nb2pipe.lifecycle.placement import PLACEMENT_FIELDS, merged_placement
from nb2pipe.lifecycle.runtimes import MLSERVER_RUNTIME
from nb2pipe.store.logged_payloads import VERSION_ANNOTATION

KEDA_CLASS = "keda"
#: Knative's config-autoscaler default targets (container-concurrency- / requests-per-second-target-default):
#: KEDA's when none is given, so a metric means the same in both modes
KNATIVE_DEFAULT_TARGETS = {"concurrency": 100, "rps": 200}
KEDA_METRICS = ("rps", "concurrency")
#: KServe's own scraping switch; "false" keeps its webhook from pointing prometheus.io/port at 9091
KSERVE_SCRAPING_ANNOTATION = "serving.kserve.io/enable-prometheus-scraping"
SCRAPE_ANNOTATION, PORT_ANNOTATION, PATH_ANNOTATION = "prometheus.io/scrape", "prometheus.io/port", "prometheus.io/path"
#: the metric KServe's Python servers (and nb2pipe's) time each predict call in
POD_METRIC = "request_predict_seconds"
#: where each runtime serves /metrics: KServe's Python servers on their HTTP port, MLServer on its own
_METRICS_PORTS = {MLSERVER_RUNTIME: 8082}
_SERVER_PORT = 8080
#: the name KServe gives a predictor's model container
KSERVE_CONTAINER = "kserve-container"
#: the label of the scraped pod's namespace: prometheus-community/helm-charts charts/prometheus/values.yaml,
#: job kubernetes-pods, relabels source_labels [__meta_kubernetes_namespace] to target_label namespace
NAMESPACE_LABEL = "namespace"
#: nb2pipe's own queries, any namespace matcher: the metric series, the service
_REQUEST_QUERY = re.compile(
    rf'sum\(rate\({POD_METRIC}_(count|sum)\{{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",)?'
    r'model_name="([^"]*)"\}\[1m\]\)\)'
)


def uses_keda(settings: DeploySettings, mode: str | None) -> bool:
    """Whether Standard mode needs KEDA for these settings: rps, concurrency or scale to zero."""
    return mode == "standard" and (settings.scale_metric in KEDA_METRICS or settings.min_replicas == 0)


def keda_metric(settings: DeploySettings) -> str:
    """rps or concurrency; scale to zero without a metric scales on concurrency, Knative's default."""
    return settings.scale_metric if settings.scale_metric in KEDA_METRICS else "concurrency"


def keda_target(settings: DeploySettings) -> int:
    """Per replica; Knative's defaults when not given (concurrency 100, rps 200)."""
    return (
        settings.scale_target if settings.scale_target is not None else KNATIVE_DEFAULT_TARGETS[keda_metric(settings)]
    )


def pod_selector(model_names: Sequence[str], namespace: str | None, namespace_label: str = NAMESPACE_LABEL) -> str:
    """The label matchers of these models' series in ``namespace`` (none for it when None or the label is "")."""
    if len(model_names) == 1:
        models = f'model_name="{model_names[0]}"'
    else:
        models = 'model_name=~"' + "|".join(model_names) + '"'
    if namespace is None or not namespace_label:
        return models
    quoted = namespace.replace("\\", "\\\\").replace('"', '\\"')  # a PromQL string, as Go quotes it
    return f'{namespace_label}="{quoted}",{models}'


def request_query(
    service: str, metric: str, namespace: str | None = None, namespace_label: str = NAMESPACE_LABEL
) -> str:
    """The PromQL KEDA asks: all replicas' predict calls per second (rps) or in flight (concurrency),
    of the service in ``namespace`` (see the module)."""
    series = "count" if metric == "rps" else "sum"
    return f"sum(rate({POD_METRIC}_{series}{{{pod_selector([service], namespace, namespace_label)}}}[1m]))"


def request_query_metric(query: str, service: str) -> str | None:
    """rps or concurrency when ``query`` is nb2pipe's request query for ``service`` (any namespace), else None."""
    match = _REQUEST_QUERY.fullmatch(query)
    if match is None or match.group(2) != service:
        return None
    return "rps" if match.group(1) == "count" else "concurrency"


def keda_autoscaling(service: str, settings: DeploySettings) -> dict[str, Any]:
    """``spec.predictor.autoScaling``: one Prometheus trigger, its target per replica (see the module);
    the query selects ``settings.namespace`` (resolved before, by ``deploy.render``)."""
    metric = keda_metric(settings)
    query = settings.scale_query or request_query(
        service, metric, settings.namespace, settings.prometheus_namespace_label
    )
    external = {
        "metric": {"backend": "prometheus", "serverAddress": settings.prometheus_url or "", "query": query},
        "target": {"type": "Value", "value": str(keda_target(settings))},
    }
    return {"metrics": [{"type": "External", "external": external}]}


def scrape_annotations(runtime: str | None) -> dict[str, str]:
    """The pod annotations a ``kubernetes-pods`` Prometheus job scrapes by (see the module)."""
    port = _METRICS_PORTS.get(runtime or "", _SERVER_PORT)
    return {
        SCRAPE_ANNOTATION: "true",
        PORT_ANNOTATION: str(port),
        PATH_ANNOTATION: "/metrics",
        KSERVE_SCRAPING_ANNOTATION: "false",
    }


#: every annotation nb2pipe writes for KEDA: a redeployment without KEDA clears them
KEDA_ANNOTATIONS = tuple(scrape_annotations(None))


# --- canaries --------------------------------------------------------------------------------


def canary_name(version: str | None, storage_uri: str) -> str:
    """``canary-v3`` for a registered version, else a name from the model's location."""
    if version and re.fullmatch(r"[0-9a-z-]+", version.lower()):
        return f"canary-v{version.lower()}".rstrip("-")
    return "canary-" + hashlib.sha256(storage_uri.encode()).hexdigest()[:8]


def canary_replicas(stable_min: int | None, percent: int) -> int:
    """KServe's canaryReplicaCount: ceil(stable minReplicas (default 1) x percent / 100)."""
    stable = 1 if stable_min is None else stable_min
    return -(-stable * percent // 100)


@dataclass(frozen=True)
class Rollout:
    """The resource to apply and what nb2pipe did about the running service, one line each."""

    resource: dict[str, Any]
    notes: tuple[str, ...] = ()
    #: what will happen to a canary nb2pipe could not compose (the running service was not readable)
    pending: str | None = None


def unread_canary(resource: dict[str, Any], percent: int, name: str, why: str) -> Rollout:
    """A canary without the running service: the resource as the new model alone, and what a
    deployment that reads the running service will do."""
    pending = (
        f"canary {percent}% to {name}: not written, the running service could not be read ({why}); deploying "
        f"keeps the version running now as stable and routes {percent}% to {name} (a first deployment takes all)"
    )
    return Rollout(resource, (pending,), pending)


def storage_of(predictor: Mapping[str, Any] | None) -> str | None:
    return ((predictor or {}).get("model") or {}).get("storageUri")


def with_canary(resource: dict[str, Any], running: Mapping[str, Any] | None, percent: int, name: str) -> Rollout:
    """``resource`` (the new model as its predictor) as a Standard-mode canary of ``running``: the
    running predictor's model stays stable, the new model gets ``percent`` % as canary ``name``.
    No running service: the new model takes all traffic, as Knative's first revision does."""
    service = resource["metadata"]["name"]
    stable = ((running or {}).get("spec") or {}).get("predictor") or {}
    new = resource["spec"]["predictor"]
    if not stable.get("model"):
        why = "it does not run yet" if running is None else "the running service has no model predictor"
        note = f"canary {percent}%: {service} takes all traffic ({why}); the next deployment with a canary splits it"
        return Rollout(resource, (note,))
    if storage_of(stable) == storage_of(new):
        same = f"canary {percent}%: {service} already serves this model; deployed without canary"
        return Rollout(resource, (same, *promoted(resource, running).notes))
    if percent == 100:
        return promoted(resource, running)
    replaced = [
        str((entry.get("predictor") or {}).get("name"))
        for entry in ((running or {}).get("spec") or {}).get("canary") or []
        if (entry.get("predictor") or {}).get("name") != name
    ]
    predictor = {**copy.deepcopy(new), "model": copy.deepcopy(stable["model"])}
    if stable.get("name"):
        predictor["name"] = stable["name"]
    # each model keeps to its own GPUs' nodes: the stable one where it runs now, the canary the new one's
    for field in PLACEMENT_FIELDS:
        predictor.pop(field, None)
        if stable.get(field):
            predictor[field] = copy.deepcopy(stable[field])
    # the CRD requires a container name in a canary's model (not in the predictor's): KServe's own
    model = {**copy.deepcopy(new["model"]), "name": KSERVE_CONTAINER}
    canary_predictor: dict[str, Any] = {"name": name, "model": model, **merged_placement(stable, new)}
    canary = {"predictor": canary_predictor, "trafficPercent": percent}
    built = {**resource, "spec": {**resource["spec"], "predictor": predictor, "canary": [canary]}}
    _keep_versions_apart(built, running, canary_predictor)
    note = (
        f"canary {percent}% to {name} ({storage_of(new)}); the stable predictor keeps {storage_of(stable)} "
        f"({100 - percent}%)"
    )
    gone = (f"the running canary {', '.join(replaced)} is replaced by {name}",) if replaced else ()
    return Rollout(built, (note, *gone))


def _keep_versions_apart(built: dict[str, Any], running: Mapping[str, Any] | None, canary: dict[str, Any]) -> None:
    """Payload records name the version that answered (the service's version annotation, which
    KServe copies to every component's pods): the stable pods keep the running version's, the
    canary's pods get the new one's through the canary's own annotations (predictor over service)."""
    annotations = dict(built["metadata"].get("annotations") or {})
    new = annotations.get(VERSION_ANNOTATION)
    if new is None:
        return
    canary["annotations"] = {VERSION_ANNOTATION: new}
    stable = (((running or {}).get("metadata") or {}).get("annotations") or {}).get(VERSION_ANNOTATION)
    if stable is None:
        del annotations[VERSION_ANNOTATION]  # unknown: the stable's records say no version rather than a wrong one
    else:
        annotations[VERSION_ANNOTATION] = stable
    built["metadata"] = {**built["metadata"], "annotations": annotations}


def promoted(resource: dict[str, Any], running: Mapping[str, Any] | None) -> Rollout:
    """The new model takes all traffic. Where a running canary already serves it, the predictor
    takes the canary's name, so KServe keeps that Deployment (promotion without restart)."""
    canaries = ((running or {}).get("spec") or {}).get("canary") or []
    new = resource["spec"]["predictor"]
    serving = [entry for entry in canaries if storage_of(entry.get("predictor")) == storage_of(new)]
    if not canaries:
        return Rollout(resource)
    spec = {key: value for key, value in resource["spec"].items() if key != "canary"}
    if not serving:
        names = ", ".join(str((entry.get("predictor") or {}).get("name")) for entry in canaries)
        note = f"the running canary {names} is removed: the new model takes all traffic"
        return Rollout({**resource, "spec": spec}, (note,))
    name = str(serving[0]["predictor"]["name"])
    predictor = {**new, "name": name}
    note = f"canary {name} promoted: it takes all traffic and becomes the stable predictor (its Deployment is kept)"
    return Rollout({**resource, "spec": {**spec, "predictor": predictor}}, (note,))


# --- what KServe's webhook checks in the KEDA and canary specs (for kserve_rules) -------------


_SOURCE_WORDS = {"Resource": "resource", "External": "external", "PodMetric": "pod"}


def keda_metric_error(metric: Mapping[str, Any]) -> str | None:
    """KServe's webhook message for a metric it refuses under KEDA, else None (validateScalingKedaCompExtension,
    inference_service_validation.go:567-634; validateScaleTarget :508-525)."""
    kind = metric.get("type")
    if kind not in ("Resource", "External", "PodMetric"):
        return f"unknown KEDA metric type with value [{kind}].Valid types are Resource,External,PodMetric"
    key = {"Resource": "resource", "External": "external", "PodMetric": "podmetric"}[kind]
    source = metric.get(key)
    if source is None:
        return f"metricSpec.{kind} is not set for {_SOURCE_WORDS[kind]} metric source type"
    target = source.get("target") or {}
    if kind == "Resource":
        name, target_type = source.get("name"), target.get("type")
        if name == "cpu" and target_type != "Utilization":
            return "the cpu target value type should be Utilization"
        if name == "memory" and target_type not in ("AverageValue", "Utilization"):
            return "the memory target value type should be AverageValue or Utilization"
        if name not in ("cpu", "memory"):
            return f"resource type {name} is not supported"
    elif not (source.get("metric") or {}).get("query"):
        return "the query should not be empty"
    elif target.get("value") is None:
        return "the target threshold value should not be empty"
    return scale_target_error(target)


def scale_target_error(target: Mapping[str, Any]) -> str | None:
    needed = {"Utilization": "averageUtilization", "AverageValue": "averageValue", "Value": "value"}
    kind = target.get("type")
    if kind in needed and target.get(needed[kind]) is None:
        return f"the {'AverageUtilization' if kind == 'Utilization' else kind} type should be set"
    if kind == "Utilization" and not 1 <= int(target["averageUtilization"]) <= 100:
        return "the target utilization percentage should be a [1-100] integer"
    return None


def canary_error(
    canaries: list[Mapping[str, Any]], stable: Mapping[str, Any], *, has_model: bool, implementations: tuple[str, ...]
) -> str | None:
    """KServe's webhook message for the first thing it refuses in ``spec.canary`` of a Standard-mode
    service, else None (validateCanarySpecs, inference_service_validation.go:183-266)."""
    if not has_model:
        return "canary requires a stable predictor with a model (multi-model serving is not supported with canary)"
    names: set[str] = set()
    for index, canary in enumerate(canaries):
        predictor, percent = canary.get("predictor") or {}, int(canary.get("trafficPercent") or 0)
        name = predictor.get("name") or ""
        if not name:
            return f"canary[{index}] predictor.name is required"
        if name in names:
            return f'canary predictor.name "{name}" is duplicated'
        names.add(name)
        if name == stable.get("name"):
            return f'canary predictor.name "{name}" conflicts with stable predictor name'
        if not 0 <= percent <= 100:
            return f'canary "{name}" trafficPercent must be between 0 and 100, got {percent}'
        count = sum(predictor.get(key) is not None for key in implementations) + bool(predictor.get("containers"))
        if count != 1:  # KServe lists every PredictorSpec field name in the brackets
            return f'canary "{name}" predictor: exactly one of [...] must be specified in PredictorSpec'
        if predictor.get("workerSpec") is not None:
            return f'canary "{name}" must not set workerSpec (multi-node is not yet supported for canary)'
        for field in ("maxReplicas", "scaleTarget", "scaleMetric", "autoScaling"):
            if predictor.get(field) is not None and (field != "maxReplicas" or predictor[field] > 0):
                return f'canary "{name}" must not set {field} (canary uses fixed replicas)'
        low, stable_low = predictor.get("minReplicas"), stable.get("minReplicas", 1)
        if low is not None and low > stable_low:
            return f'canary "{name}" minReplicas ({low}) must not exceed stable predictor minReplicas ({stable_low})'
    total = sum(int(canary.get("trafficPercent") or 0) for canary in canaries)
    return f"sum of canary trafficPercent values ({total}) must be <= 100" if total > 100 else None
