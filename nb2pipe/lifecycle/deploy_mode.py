"""Which KServe deployment mode an InferenceService gets, and why.

KServe runs a service in Knative mode (Knative Pod Autoscaler: concurrency / rps, scale to
zero, revision canaries) or Standard mode (a Deployment with an HPA: cpu / memory only),
by the annotation ``serving.kserve.io/deploymentMode``, else by the cluster's default:
``defaultDeploymentMode`` in the ``deploy`` key of ConfigMap ``inferenceservice-config``.
nb2pipe always writes the annotation, so a service means the same on every cluster: the
mode the user gave (``mode:`` tag, ``metadata.nb2pipe.deploy.mode``, ``--mode``), else the
cluster's default read here, else Knative (KServe's shipped default), said as assumed.
The same read reports ``enableGatewayApi`` of the ConfigMap's ``ingress`` key: Standard-mode
canary weights (``spec.canary``) are applied only through the Gateway API.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from typing import Any

from nb2pipe.ir import DEPLOY_MODES, DeployMode
from nb2pipe.lifecycle.cluster import in_cluster

CONFIG_MAP = "inferenceservice-config"
#: where KServe keeps it: its own install, then Kubeflow's (which installs KServe in kubeflow)
KSERVE_NAMESPACES = ("kserve", "kubeflow")
#: seconds to connect and to read: deploying never hangs on a cluster that does not answer
TIMEOUT = (3.0, 5.0)

GIVEN = "given"
CLUSTER_DEFAULT = f"the cluster's default ({CONFIG_MAP})"
NO_CLUSTER = "assumed: no cluster reachable"
UNREADABLE = f"assumed: {CONFIG_MAP} not readable"
NO_DEFAULT = f"assumed: {CONFIG_MAP} names no default mode"
NOT_CONSULTED = "assumed: no cluster consulted"

#: KServe's names (the current and the legacy one) -> nb2pipe's
_KSERVE_MODES: dict[str, DeployMode] = {
    "Knative": "knative",
    "Serverless": "knative",
    "Standard": "standard",
    "RawDeployment": "standard",
}
#: nb2pipe's name -> the annotation's value (KServe compares it case-sensitively)
ANNOTATION_VALUES: dict[str, str] = {"knative": "Knative", "standard": "Standard"}


@dataclass(frozen=True)
class ResolvedMode:
    """A mode and where it came from (``source``, one line, also written as an annotation);
    ``detail`` says why it was assumed."""

    mode: DeployMode
    source: str
    detail: str = ""
    #: ``ingress.enableGatewayApi`` of the ConfigMap read (None: not read): Standard-mode canary
    #: weights are applied only through the Gateway API's HTTPRoute
    gateway_api: bool | None = field(default=None, compare=False)

    @property
    def assumed(self) -> bool:
        return self.source.startswith("assumed")

    @property
    def annotation(self) -> str:
        return ANNOTATION_VALUES[self.mode]

    def describe(self) -> str:
        """``deployment mode Knative (given)``."""
        return f"deployment mode {self.annotation} ({self.source})"

    def warning(self) -> str:
        """What a deploy says when the mode was assumed."""
        why = f" ({self.detail})" if self.detail else ""
        return (
            f"deployment mode {self.annotation} {self.source}{why}; choose it with mode:knative or mode:standard "
            "on the deploy: cell, metadata.nb2pipe.deploy.mode, or --mode"
        )

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "annotation": self.annotation, "source": self.source, "assumed": self.assumed}


def given_or_assumed(mode: DeployMode | None) -> ResolvedMode:
    """The mode without asking a cluster: the given one, else Knative."""
    return ResolvedMode(mode, GIVEN) if mode is not None else ResolvedMode("knative", NOT_CONSULTED)


def resolve_mode(mode: DeployMode | None) -> ResolvedMode:
    """The given mode, else the cluster's default, else Knative (assumed, with the reason)."""
    if mode is not None:
        return ResolvedMode(mode, GIVEN)
    return cluster_default()


def cluster_default(namespaces: tuple[str, ...] = KSERVE_NAMESPACES) -> ResolvedMode:
    """``defaultDeploymentMode`` of the cluster in the kubeconfig (or in-cluster)."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        api = _core_api()
    except Exception as exc:  # any unusable configuration means the same here: no cluster to ask
        return ResolvedMode("knative", NO_CLUSTER, f"no Kubernetes configuration: {_first_line(exc)}")
    host = api.api_client.configuration.host
    missing: list[str] = []
    for namespace in namespaces:
        try:
            config_map = api.read_namespaced_config_map(CONFIG_MAP, namespace, _request_timeout=TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                missing.append(namespace)
                continue
            return ResolvedMode("knative", UNREADABLE, f"{namespace}/{CONFIG_MAP}: {exc.status} {exc.reason}")
        except (HTTPError, OSError) as exc:
            return ResolvedMode(
                "knative", NO_CLUSTER, f"the API server at {host} does not answer ({type(exc).__name__})"
            )
        data = config_map.data or {}
        return replace(default_in(data, f"{namespace}/{CONFIG_MAP}"), gateway_api=gateway_api_in(data))
    return ResolvedMode("knative", UNREADABLE, f"no {CONFIG_MAP} in namespace {' or '.join(missing)}")


def default_in(data: dict[str, str], where: str) -> ResolvedMode:
    """The mode that the ConfigMap's ``deploy`` key names (legacy names mapped as KServe does)."""
    text = data.get("deploy")
    if text is None:  # KServe then reconciles as Knative
        return ResolvedMode("knative", NO_DEFAULT, f"{where} has no deploy key")
    try:
        named = json.loads(text).get("defaultDeploymentMode")
    except (ValueError, AttributeError):
        return ResolvedMode("knative", NO_DEFAULT, f"the deploy key of {where} is not a JSON object")
    mode = _KSERVE_MODES.get(named) if isinstance(named, str) else None
    if mode is None:
        modes = ", ".join(ANNOTATION_VALUES[m] for m in DEPLOY_MODES)
        return ResolvedMode("knative", NO_DEFAULT, f"{where} names {named!r}, not one of {modes}")
    return ResolvedMode(mode, CLUSTER_DEFAULT)


def gateway_api_in(data: dict[str, str]) -> bool | None:
    """``enableGatewayApi`` of the ConfigMap's ``ingress`` key (KServe's default: false); None
    when the key is not JSON."""
    try:
        ingress = json.loads(data.get("ingress") or "{}")
    except ValueError:
        return None
    value = ingress.get("enableGatewayApi", False) if isinstance(ingress, dict) else None
    return value if isinstance(value, bool) else None


def _core_api() -> Any:
    """A CoreV1Api on its own configuration, without retries (one short try)."""
    from kubernetes import client, config

    configuration = client.Configuration()
    if in_cluster():
        config.load_incluster_config(client_configuration=configuration)
    else:
        # as nb2pipe.lifecycle.cluster: the client reads KUBECONFIG only when first imported
        path = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
        config.load_kube_config(config_file=path, client_configuration=configuration, persist_config=False)
    configuration.retries = 0
    return client.CoreV1Api(client.ApiClient(configuration))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
