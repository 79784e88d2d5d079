"""Applying autoscale decisions to KServe through the Kubernetes API (the official client).

The resources are the ones ``nb2pipe deploy --plan`` made (``capacity.deployment``): one variant
is the InferenceService ``SERVICE``; several are ``SERVICE-VARIANT`` each, behind the
InferenceGraph ``SERVICE`` whose ``root`` Splitter weights them. Per variant the loop patches
(JSON merge patches, only the fields that differ):

- ``minReplicas``: the predictive floor. KServe's own autoscaler still adds replicas above it. Never
  below 1: in Standard mode KServe makes 0 into 1 anyway, ``autoscalerClass: none`` would run 0 pods,
  and KEDA cannot scale up from 0 on a metric the pods export (docs/kserve-rules.md).
- ``maxReplicas``: never below ``minReplicas`` (KServe's webhook refuses min > max).
- ``batcher``: ``maxBatchSize`` and ``maxLatency`` (ms). Changing them restarts the pods, so
  they change only when the plan's batch size does.

and the Splitter's weights: the variants with traffic, whole percents summing to 100. In Knative
mode each change of ``minReplicas`` makes a new Revision; Standard mode changes only the HPA or
ScaledObject.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nb2pipe.capacity.control import Decision, VariantSetting
from nb2pipe.errors import Nb2PipeError

SERVICE = ("serving.kserve.io", "v1beta1", "inferenceservices")
GRAPH = ("serving.kserve.io", "v1alpha1", "inferencegraphs")
#: seconds to connect and to read each API call: a decision never hangs on a silent API server
REQUEST_TIMEOUT = (3.0, 10.0)


class ActuatorError(Nb2PipeError):
    """The cluster refused a change, or its API server did not answer."""


def variant_service(service: str, variant: str) -> str:
    """``SERVICE-VARIANT`` as a DNS label, as ``deploy --plan`` names it."""
    from nb2pipe.capacity.deployment import variant_service as named

    return named(service, variant)


class ClusterActuator:
    """An :class:`~nb2pipe.capacity.control.Actuator` over InferenceServices and an InferenceGraph."""

    def __init__(self, service: str, variants: Sequence[str], namespace: str | None = None, api: Any = None) -> None:
        from nb2pipe.lifecycle.cluster import current_namespace, custom_objects_api

        if not variants:
            raise ActuatorError("no variant to scale")
        self.service = service
        self.namespace = namespace or current_namespace()
        self.names = {v: service if len(variants) == 1 else variant_service(service, v) for v in variants}
        self.api = api if api is not None else custom_objects_api()

    def current(self) -> tuple[VariantSetting, ...] | None:
        services = {v: self._read(SERVICE, name) for v, name in self.names.items()}
        if any(s is None for s in services.values()):
            return None
        weights = self._weights() if len(self.names) > 1 else {next(iter(self.names)): 100}
        if weights is None:
            return None
        settings = []
        for variant, resource in services.items():
            predictor = (resource or {}).get("spec", {}).get("predictor", {})
            low = int(predictor.get("minReplicas", 1))
            batcher = predictor.get("batcher")
            settings.append(
                VariantSetting(
                    variant,
                    low,
                    max(int(predictor.get("maxReplicas") or low), low),
                    int(batcher.get("maxBatchSize", 32)) if batcher is not None else 1,
                    int(batcher.get("maxLatency", 500)) if batcher is not None else 0,
                    weights.get(variant, 0),
                )
            )
        return tuple(settings)

    def apply(self, decision: Decision) -> None:
        wanted = {s.variant: s for s in decision.settings}
        unknown = sorted(set(wanted) - set(self.names))
        if unknown:
            raise ActuatorError(f"the decision names variants {', '.join(unknown)} that {self.service} does not serve")
        if len(self.names) > 1 and sum(s.percent for s in wanted.values()) != 100:
            raise ActuatorError(f"the decision's split adds up to {sum(s.percent for s in wanted.values())} %, not 100")
        # replicas first: a variant that gets more traffic has its floor raised before its weight
        for variant, setting in wanted.items():
            name = self.names[variant]
            resource = self._read(SERVICE, name)
            if resource is None:
                raise ActuatorError(self._missing("InferenceService", name))
            patch = predictor_patch(resource.get("spec", {}).get("predictor", {}), setting)
            if patch:
                self._patch(SERVICE, name, {"spec": {"predictor": patch}})
        if len(self.names) > 1:
            self._reweigh(wanted)

    def _reweigh(self, wanted: dict[str, VariantSetting]) -> None:
        graph = self._read(GRAPH, self.service)
        if graph is None:
            raise ActuatorError(self._missing("InferenceGraph", self.service))
        root = (graph.get("spec", {}).get("nodes") or {}).get("root") or {}
        if root.get("routerType") != "Splitter":
            raise ActuatorError(
                f"InferenceGraph {self.namespace}/{self.service}: its root node is a {root.get('routerType')!r} "
                "router, not the Splitter deploy --plan writes"
            )
        old = {step.get("serviceName"): step for step in root.get("steps") or []}
        steps = [
            {**old.get(self.names[v], {}), "serviceName": self.names[v], "weight": s.percent}
            for v, s in wanted.items()
            if s.percent > 0
        ]
        if [(s.get("serviceName"), s.get("weight")) for s in root.get("steps") or []] != [
            (s["serviceName"], s["weight"]) for s in steps
        ]:
            self._patch(GRAPH, self.service, {"spec": {"nodes": {"root": {**root, "steps": steps}}}})

    def _weights(self) -> dict[str, int] | None:
        graph = self._read(GRAPH, self.service)
        if graph is None:
            return None
        steps = ((graph.get("spec", {}).get("nodes") or {}).get("root") or {}).get("steps") or []
        by_name = {name: variant for variant, name in self.names.items()}
        return {by_name[s["serviceName"]]: int(s.get("weight", 0)) for s in steps if s.get("serviceName") in by_name}

    def _read(self, kind: tuple[str, str, str], name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return self._call("get", kind, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise self._refused("read", kind, name, exc) from None

    def _patch(self, kind: tuple[str, str, str], name: str, body: dict[str, Any]) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self._call("patch", kind, name, body)
        except ApiException as exc:
            raise self._refused("patch", kind, name, exc) from None

    def _call(self, verb: str, kind: tuple[str, str, str], name: str, *body: Any) -> Any:
        from urllib3.exceptions import HTTPError

        group, version, plural = kind
        method = getattr(self.api, f"{verb}_namespaced_custom_object")
        try:
            return method(group, version, self.namespace, plural, name, *body, _request_timeout=REQUEST_TIMEOUT)
        except (HTTPError, OSError) as exc:
            host = self.api.api_client.configuration.host
            raise ActuatorError(
                f"cannot {verb} {plural} {self.namespace}/{name}: the Kubernetes API server at {host} "
                f"does not answer ({type(exc).__name__}); check KUBECONFIG and the network"
            ) from None

    def _refused(self, verb: str, kind: tuple[str, str, str], name: str, exc: Any) -> ActuatorError:
        from nb2pipe.lifecycle.cluster import refusal_reason

        return ActuatorError(f"the cluster refused to {verb} {kind[2]} {self.namespace}/{name}: {refusal_reason(exc)}")

    def _missing(self, kind: str, name: str) -> str:
        return (
            f"{kind} {self.namespace}/{name} does not exist; deploy the plan first "
            f"(nb2pipe deploy {self.service} --plan PLAN.json), then autoscale it"
        )


def predictor_patch(predictor: dict[str, Any], setting: VariantSetting) -> dict[str, Any]:
    """The predictor fields that must change for ``setting`` (empty: nothing to do)."""
    low = max(1, setting.replicas)  # never zero: see the module
    wanted: dict[str, Any] = {
        "minReplicas": low,
        "maxReplicas": max(setting.max_replicas, low),
        "batcher": {"maxBatchSize": setting.batch_size, "maxLatency": setting.max_latency_ms},
    }
    patch = {}
    for key, value in wanted.items():
        if key == "batcher":
            old = predictor.get("batcher") or {}
            if any(old.get(k) != v for k, v in value.items()):
                patch[key] = value
        elif predictor.get(key) != value:
            patch[key] = value
    return patch
