"""Create or update an InferenceService through the kubernetes client and wait until KServe
reports it Ready. Configuration: in-cluster when running in a pod (a pipeline step), else
the kubeconfig (``KUBECONFIG`` / ``~/.kube/config``)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from nb2pipe.errors import Nb2PipeError
from nb2pipe.lifecycle.kserve_rules import (
    AUTOSCALER_CLASS_ANNOTATION,
    KNATIVE_CLASS_ANNOTATION,
    deployment_mode,
    recorded_mode,
)
from nb2pipe.lifecycle.placement import PLACEMENT_FIELDS, placement_patch
from nb2pipe.lifecycle.standard_scaling import KEDA_ANNOTATIONS, Rollout, promoted, unread_canary, with_canary

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

        _, context = config.list_kube_config_contexts(config_file=_kubeconfig())
        return (context or {}).get("context", {}).get("namespace") or "default"
    except Exception:  # no kubeconfig: the default namespace is as good a guess as any
        return "default"


def _kubeconfig() -> str:
    # the kubernetes client reads KUBECONFIG once, when first imported; read it now
    return os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")


def _api() -> Any:
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    try:
        if in_cluster():
            config.load_incluster_config()
        else:
            config.load_kube_config(config_file=_kubeconfig())
    except (ConfigException, OSError) as exc:
        raise DeployError(
            f"no Kubernetes cluster configured ({exc}); write the YAML with --dry-run -o FILE, "
            "or set KUBECONFIG to a cluster with KServe"
        ) from None
    return client.CustomObjectsApi()


def custom_objects_api() -> Any:
    """The kubernetes client's CustomObjectsApi, configured as ``deploy`` configures it (in a pod:
    its service account; else the kubeconfig); DeployError when no cluster is configured."""
    return _api()


def refusal_reason(exc: Any) -> str:
    """The API server's message in an ApiException (its Status body), else its status line."""
    return _reason(exc)


@dataclass(frozen=True)
class Running:
    """The InferenceService running now (None: none by that name), or why it could not be read."""

    resource: dict[str, Any] | None
    unreadable: str | None = None


#: seconds to connect and to read: rendering never hangs on a cluster that does not answer
READ_TIMEOUT = (3.0, 5.0)


def read_inference_service(name: str, namespace: str | None) -> Running:
    """The service as the cluster has it, for a canary's stable predictor; never raises."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        api = _api()
    except DeployError as exc:
        return Running(None, str(exc).split(";")[0])
    where = namespace or current_namespace()
    try:
        return Running(
            api.get_namespaced_custom_object(GROUP, VERSION, where, PLURAL, name, _request_timeout=READ_TIMEOUT)
        )
    except ApiException as exc:
        return Running(None) if exc.status == 404 else Running(None, f"{where}/{name}: {_reason(exc)}")
    except (HTTPError, OSError) as exc:
        return Running(None, _unreachable(api, f"{where}/{name}", exc))


def standard_rollout(resource: dict[str, Any], canary_percent: int | None, canary: str) -> Rollout:
    """A Standard-mode ``resource`` composed with the service running now (standard_scaling):
    a canary of the new model beside the running one, or the promotion of a running canary."""
    metadata = resource["metadata"]
    running = read_inference_service(metadata["name"], metadata.get("namespace"))
    if running.unreadable is not None:
        if canary_percent is None:
            return Rollout(resource)  # applying replaces any canary anyway (_merge_patch)
        return unread_canary(resource, canary_percent, canary, running.unreadable)
    if canary_percent is None:
        return promoted(resource, running.resource)
    return with_canary(resource, running.resource, canary_percent, canary)


def apply_inference_service(resource: dict[str, Any], *, wait_seconds: float = 300, poll: float = 2.0) -> Applied:
    """Create ``resource`` or patch the existing one, then wait for Ready (0: don't wait)."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    api = _api()
    name = resource["metadata"]["name"]
    namespace = resource["metadata"].get("namespace") or current_namespace()
    resource = {**resource, "metadata": {**resource["metadata"], "namespace": namespace}}
    try:
        try:
            current = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
            exists = True
        except ApiException as exc:
            if exc.status != 404:
                raise
            exists = False
        if exists:
            _check_mode_kept(resource, current)
            patch = _merge_patch(resource, current)
            api.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, patch)
        else:
            api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, resource)
    except ApiException as exc:
        raise DeployError(f"the cluster refused InferenceService {namespace}/{name}: {_reason(exc)}") from None
    except (HTTPError, OSError) as exc:
        raise DeployError(_unreachable(api, f"{namespace}/{name}", exc)) from None
    action = "updated" if exists else "created"
    if wait_seconds <= 0:
        return Applied(name, namespace, action, False, None, "not waited for")
    return _wait_ready(api, name, namespace, action, wait_seconds, poll)


def _check_mode_kept(resource: dict[str, Any], current: dict[str, Any]) -> None:
    """KServe's webhook refuses to move a running service to another deployment mode
    ("update rejected: deploymentMode cannot be changed"): say so before asking, with the ways out."""
    running, wanted = recorded_mode(current), deployment_mode(resource)
    if running is None or wanted is None or running == wanted:
        return
    metadata = resource["metadata"]
    raise DeployError(
        f"InferenceService {metadata['namespace']}/{metadata['name']} runs in {running} mode, and KServe does not "
        f"move a running service to {wanted} mode: deploy with --mode {running.lower()} (or mode:{running.lower()}), "
        f"or delete it first (kubectl delete inferenceservice {metadata['name']} -n {metadata['namespace']})"
    )


def _merge_patch(resource: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch: every predictor field the running service has and this deployment
    does not set is cleared (null), so an earlier canary, logger, GPU, limit or autoScaling does
    not linger (fields KServe's webhook defaults are defaulted again); so is a Standard-mode
    ``spec.canary`` this deployment does not write (a promotion or a rollout without canary).
    ``nodeSelector`` and ``tolerations`` keep what a user added by hand (:mod:`placement`)."""
    running = (current.get("spec") or {}).get("predictor") or {}
    predictor = _null_missing(running, resource["spec"]["predictor"])
    for field in PLACEMENT_FIELDS:  # the nodes: hand-added entries stay, nb2pipe's earlier GPU ones go
        predictor.pop(field, None)
    predictor |= placement_patch(running, resource["spec"]["predictor"])
    spec = {**resource["spec"], "predictor": predictor}
    if (current.get("spec") or {}).get("canary") and "canary" not in spec:
        spec["canary"] = None
    metadata = dict(resource["metadata"])
    running_notes = (current.get("metadata") or {}).get("annotations") or {}
    # an autoscaler class written for the old scaling would make KServe judge the new one by it
    stale = {
        key: None for key in _SCALING_ANNOTATIONS if key in running_notes and key not in metadata.get("annotations", {})
    }
    if stale:
        metadata["annotations"] = {**metadata.get("annotations", {}), **stale}
    return {**resource, "metadata": metadata, "spec": spec}


#: annotations an earlier scaling wrote: the autoscaler classes, KEDA's Prometheus scraping
_SCALING_ANNOTATIONS = (AUTOSCALER_CLASS_ANNOTATION, KNATIVE_CLASS_ANNOTATION, *KEDA_ANNOTATIONS)


def _null_missing(old: Any, new: Any) -> Any:
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    merged: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        merged[key] = _null_missing(old.get(key), value)
    return merged


def _wait_ready(api: Any, name: str, namespace: str, action: str, wait_seconds: float, poll: float) -> Applied:
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    deadline = time.monotonic() + wait_seconds
    message = "no status yet"
    while True:
        try:
            current = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as exc:
            raise DeployError(f"cannot read InferenceService {namespace}/{name}: {_reason(exc)}") from None
        except (HTTPError, OSError) as exc:
            raise DeployError(_unreachable(api, f"{namespace}/{name}", exc)) from None
        status = current.get("status") or {}
        # right after a patch the status still describes the previous generation
        generation = (current.get("metadata") or {}).get("generation")
        observed = status.get("observedGeneration")
        current_status = generation is None or observed is None or observed >= generation
        for condition in status.get("conditions") or [] if current_status else []:
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


def _unreachable(api: Any, where: str, exc: BaseException) -> str:
    host = api.api_client.configuration.host
    return (
        f"cannot deploy InferenceService {where}: the Kubernetes API server at {host} does not answer "
        f"({type(exc).__name__}); check KUBECONFIG and the network"
    )


def _reason(exc: Any) -> str:
    import json

    try:
        return json.loads(exc.body).get("message") or str(exc.reason)
    except (TypeError, ValueError, AttributeError):
        return f"{exc.status} {exc.reason}"
