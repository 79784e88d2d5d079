"""Create or update an InferenceService through the kubernetes client and wait until KServe
reports it Ready. Configuration: in-cluster when running in a pod (a pipeline step), else
the kubeconfig (``KUBECONFIG`` / ``~/.kube/config``)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from nb2pipe.errors import Nb2PipeError

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
IN_CLUSTER_ENV = "KUBERNETES_SERVICE_HOST"


class DeployError(Nb2PipeError):
    """The cluster refused the deployment or it did not become ready in time."""


@dataclass(frozen=True)
class Applied:
    name: str
    namespace: str
    action: str  # created | updated
    ready: bool
    url: str | None
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "namespace": self.namespace,
            "action": self.action,
            "ready": self.ready,
            "url": self.url,
            "message": self.message,
        }


def in_cluster() -> bool:
    return bool(os.environ.get(IN_CLUSTER_ENV))


def current_namespace() -> str:
    """The pod's namespace in a cluster, else the kubeconfig context's, else ``default``."""
    path = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
    if in_cluster() and os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    try:
        from kubernetes import config

        _, context = config.list_kube_config_contexts()
        return (context or {}).get("context", {}).get("namespace") or "default"
    except Exception:  # no kubeconfig: the default namespace is as good a guess as any
        return "default"


def _api() -> Any:
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    try:
        if in_cluster():
            config.load_incluster_config()
        else:
            config.load_kube_config()
    except (ConfigException, OSError) as exc:
        raise DeployError(
            f"no Kubernetes cluster configured ({exc}); write the YAML with --dry-run -o FILE, "
            "or set KUBECONFIG to a cluster with KServe"
        ) from None
    return client.CustomObjectsApi()


def apply_inference_service(resource: dict[str, Any], *, wait_seconds: float = 300, poll: float = 2.0) -> Applied:
    """Create ``resource`` or patch the existing one, then wait for Ready (0: don't wait)."""
    from kubernetes.client.exceptions import ApiException

    api = _api()
    name = resource["metadata"]["name"]
    namespace = resource["metadata"].get("namespace") or current_namespace()
    resource = {**resource, "metadata": {**resource["metadata"], "namespace": namespace}}
    try:
        try:
            api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
            exists = True
        except ApiException as exc:
            if exc.status != 404:
                raise
            exists = False
        if exists:
            patch = _merge_patch(resource)
            api.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, patch)
        else:
            api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, resource)
    except ApiException as exc:
        raise DeployError(f"the cluster refused InferenceService {namespace}/{name}: {_reason(exc)}") from None
    action = "updated" if exists else "created"
    if wait_seconds <= 0:
        return Applied(name, namespace, action, False, None, "not waited for")
    return _wait_ready(api, name, namespace, action, wait_seconds, poll)


def _merge_patch(resource: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch: fields this deployment does not set are cleared (null), so a
    canary or logger from an earlier deployment does not linger."""
    predictor = dict(resource["spec"]["predictor"])
    for field in ("canaryTrafficPercent", "logger", "minReplicas", "maxReplicas", "scaleMetric", "scaleTarget"):
        predictor.setdefault(field, None)
    return {**resource, "spec": {**resource["spec"], "predictor": predictor}}


def _wait_ready(api: Any, name: str, namespace: str, action: str, wait_seconds: float, poll: float) -> Applied:
    from kubernetes.client.exceptions import ApiException

    deadline = time.monotonic() + wait_seconds
    message = "no status yet"
    while True:
        try:
            current = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as exc:
            raise DeployError(f"cannot read InferenceService {namespace}/{name}: {_reason(exc)}") from None
        status = current.get("status") or {}
        for condition in status.get("conditions") or []:
            if condition.get("type") == "Ready":
                if condition.get("status") == "True":
                    return Applied(name, namespace, action, True, status.get("url"))
                message = condition.get("message") or condition.get("reason") or message
        if time.monotonic() >= deadline:
            raise DeployError(
                f"InferenceService {namespace}/{name} was {action} but is not Ready after {wait_seconds:g} s: "
                f"{message}; see kubectl describe inferenceservice {name} -n {namespace}"
            )
        time.sleep(poll)


def _reason(exc: Any) -> str:
    import json

    try:
        return json.loads(exc.body).get("message") or str(exc.reason)
    except (TypeError, ValueError, AttributeError):
        return f"{exc.status} {exc.reason}"
