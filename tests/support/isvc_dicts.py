"""Minimal InferenceService dicts for the offline KServe rule and behaviour tests."""

from __future__ import annotations

from typing import Any

from nb2pipe.ir import DeploySettings
from nb2pipe.lifecycle.kserve_rules import (
    AUTOSCALER_CLASS_ANNOTATION,
    KNATIVE_CLASS_ANNOTATION,
    KNATIVE_HPA_CLASS,
    MODE_ANNOTATION,
)

MODEL = {"modelFormat": {"name": "sklearn", "version": "1"}, "storageUri": "s3://models/cancer/1"}
KNATIVE_HPA = {KNATIVE_CLASS_ANNOTATION: KNATIVE_HPA_CLASS}


def isvc(
    mode: str | None = "Knative",
    annotations: dict[str, str] | None = None,
    name: str = "cancer",
    spec: dict[str, Any] | None = None,
    **predictor: Any,
) -> dict[str, Any]:
    """A minimal InferenceService: the model, the predictor fields given, the mode annotation."""
    notes = ({MODE_ANNOTATION: mode} if mode is not None else {}) | (annotations or {})
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "annotations": notes},
        "spec": {"predictor": {"model": dict(MODEL), **predictor}, **(spec or {})},
    }


def standard(cls: str | None = "hpa", **predictor: Any) -> dict[str, Any]:
    return isvc("Standard", {AUTOSCALER_CLASS_ANNOTATION: cls} if cls else {}, **predictor)


HPA_OK = {"minReplicas": 1, "maxReplicas": 4}
PROM = "http://prometheus.monitoring:9090"


def external(query: str = "q", target: dict[str, Any] | None = None, server: str | None = PROM) -> dict[str, Any]:
    """A KEDA Prometheus trigger as KServe's autoScaling spec writes it."""
    metric = {"backend": "prometheus", "query": query} | ({"serverAddress": server} if server else {})
    return {"type": "External", "external": {"metric": metric, "target": target or {"type": "Value", "value": "5"}}}


def resource_metric(name: str, target: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Resource", "resource": {"name": name, "target": target}}


def keda(*metrics: dict[str, Any], **predictor: Any) -> dict[str, Any]:
    return standard("keda", autoScaling={"metrics": list(metrics)}, **{**HPA_OK, **predictor})


def canaried(*canaries: dict[str, Any], **predictor: Any) -> dict[str, Any]:
    return standard(spec={"canary": list(canaries)}, **{**HPA_OK, **predictor})


def canary(name: str | None = "canary-v2", percent: int = 20, **predictor: Any) -> dict[str, Any]:
    fields = ({"name": name} if name else {}) | {"model": MODEL | {"name": "kserve-container"}} | predictor
    return {"predictor": fields, "trafficPercent": percent}


def with_explainer(resource: dict[str, Any], **explainer: Any) -> dict[str, Any]:
    resource["spec"]["explainer"] = {"containers": [{"name": "kserve-container", "image": "x"}], **explainer}
    return resource


def stable_named(resource: dict[str, Any], name: str) -> dict[str, Any]:
    resource["spec"]["predictor"]["name"] = name
    return resource


EXTERNAL = external()
CPU_METRIC = {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization"}}}
KEDA_CPU = resource_metric("cpu", {"type": "Utilization", "averageUtilization": 70})
POD_QUERY = 'sum(rate(request_predict_seconds_count{model_name="cancer"}[1m]))'
STORAGE = {"path": "logs", "parameters": {"format": "json"}, "key": "creds"}
PYTHONPATH = {"env": [{"name": "PYTHONPATH", "value": "/x"}]}

#: every optional predictor setting at once (Knative mode: canary and concurrency)
EVERY_SETTING = DeploySettings(
    gpu=1,
    min_replicas=1,
    max_replicas=4,
    scale_metric="concurrency",
    scale_target=8,
    container_concurrency=16,
    canary_percent=20,
    monitor=True,
    logger_url="http://logger.example/",
)
