"""Checks of :class:`~nb2pipe.ir.DeploySettings` that need no cluster: what KServe would
reject or misread in each deployment mode, in words a user can act on."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from nb2pipe import k8s_names
from nb2pipe.errors import Nb2PipeError
from nb2pipe.ir import DEPLOY_MODES, RUNTIME_CHOICES, SCALE_METRICS, DeploySettings

#: the blob stores KServe's payload logger writes objects to (pkg/logger/store.go GetStorageStrategy)
LOGGER_BLOB_SCHEMES = ("s3", "gs", "abfs")


def deploy_problems(settings: DeploySettings) -> list[str]:
    """Every reason KServe would reject or misread these settings; empty when they are fine."""
    found: list[str] = []
    low, high = settings.min_replicas, settings.max_replicas
    if low is not None and low < 0:
        found.append("minimum replicas cannot be negative")
    if high is not None and high < 1:
        found.append("maximum replicas must be at least 1")
    if low is not None and high is not None and low > high:
        found.append(f"minimum replicas {low} is above the maximum {high}")
    if settings.scale_metric is not None and settings.scale_metric not in SCALE_METRICS:
        found.append(f"scale metric {settings.scale_metric!r} is not one of {', '.join(SCALE_METRICS)}")
    if settings.scale_target is not None and settings.scale_target < 1:
        found.append("the scale target must be at least 1")
    if settings.scale_target is not None and settings.scale_metric is None:
        found.append("a scale target needs a scale metric (concurrency, rps, cpu or memory)")
    if low == 0 and settings.scale_metric in ("cpu", "memory"):
        found.append("scaling to zero works with the concurrency or rps metric, not cpu or memory")
    if settings.canary_percent is not None and not 0 <= settings.canary_percent <= 100:
        found.append(f"canary traffic {settings.canary_percent}% must be between 0 and 100")
    if settings.gpu < 0:
        found.append("the GPU count cannot be negative")
    gpu_type = gpu_type_problem(settings.gpu_type)
    if gpu_type is not None:
        found.append(gpu_type)
    if settings.container_concurrency is not None and settings.container_concurrency < 0:
        found.append("container concurrency cannot be negative (0 means unlimited)")
    if settings.batch_max_size is not None and settings.batch_max_size < 1:
        found.append("the batcher's largest batch must be at least 1")
    if settings.batch_max_latency_ms is not None and settings.batch_max_latency_ms < 1:
        found.append("the batcher's wait must be at least 1 ms")
    if settings.mode is not None and settings.mode not in DEPLOY_MODES:
        found.append(f"deployment mode {settings.mode!r} is not one of {', '.join(DEPLOY_MODES)}")
    if settings.mode == "standard":
        found += standard_mode_problems(settings)
    if settings.mode == "knative" and settings.scale_query is not None:
        found.append("a scale query has no effect in Knative mode (its autoscaler takes none): drop --scale-query")
    if settings.runtime is not None and settings.runtime not in RUNTIME_CHOICES:
        found.append(f"runtime {settings.runtime!r} is not one of {', '.join(RUNTIME_CHOICES)}")
    if settings.kserve_version is not None and parse_kserve_version(settings.kserve_version) is None:
        found.append(f"KServe version {settings.kserve_version!r} is not MAJOR.MINOR[.PATCH] (e.g. 0.20)")
    found += logger_problems(settings)
    if settings.prometheus_url is not None and not settings.prometheus_url.startswith(("http://", "https://")):
        found.append(f"Prometheus URL {settings.prometheus_url!r} must start with http:// or https://")
    label_problem = namespace_label_problem(settings.prometheus_namespace_label)
    if label_problem:
        found.append(label_problem)
    if settings.mode == "knative" and settings.scale_metric == "memory":
        # Knative's HPA class makes the target MiB per replica (an AverageValue), and KServe's
        # webhook refuses any target above 100: not the % of the request it is in Standard mode
        found.append(
            "scale metric memory in Knative mode: Knative's HPA class reads the target as MiB per replica, and "
            "KServe refuses targets above 100: use mode:standard (memory in % of the request), or scale:cpu"
        )
    return found


#: the resource NVIDIA's device plugin advertises whole GPUs as (and MIG slices, under the "single" strategy)
GPU_RESOURCE = "nvidia.com/gpu"
#: the node label NVIDIA's GPU Feature Discovery writes: the GPU's name as NVML reports it, each space
#: turned into '-' (k8s-device-plugin internal/lm/resource.go productLabel), "-MIG-<profile>" appended
#: under the "single" MIG strategy: NVIDIA-H100-80GB-HBM3, NVIDIA-A100-SXM4-40GB-MIG-1g.5gb
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"


@dataclass(frozen=True)
class GpuPlacement:
    """Where a deployment's GPUs come from: the extended resource its container requests and, for a
    GPU product, the ``nvidia.com/gpu.product`` label value its nodes must carry."""

    resource: str
    product: str | None = None

    @property
    def node_selector(self) -> dict[str, str] | None:
        return {GPU_PRODUCT_LABEL: self.product} if self.product else None

    @property
    def tolerations(self) -> list[dict[str, str]]:
        """The toleration Kubernetes' ExtendedResourceToleration admission adds for the resource, for GPU node
        pools tainted ``<resource>:NoSchedule`` (EKS GPU node groups, the GPU operator's docs). Nodes with MIG
        slices are NVIDIA GPU nodes, commonly tainted ``nvidia.com/gpu``: that taint is tolerated too (a
        toleration only allows a node; the slice request still chooses it)."""
        keys = [self.resource]
        if self.resource.startswith("nvidia.com/") and self.resource != GPU_RESOURCE:
            keys.append(GPU_RESOURCE)
        return [{"key": key, "operator": "Exists", "effect": "NoSchedule"} for key in keys]


def gpu_placement(settings: DeploySettings) -> GpuPlacement | None:
    """The placement ``settings`` ask for; None without GPUs. ``gpu_type`` with a '/' is an extended
    resource (nvidia.com/mig-1g.18gb); without one, a GPU product on ``nvidia.com/gpu`` nodes."""
    if settings.gpu <= 0:
        return None
    return placement_of(settings.gpu_type)


def placement_of(gpu_type: str) -> GpuPlacement:
    """A deployment's or a pipeline step's GPU type as a resource and, for a product, its node label."""
    problem = gpu_type_problem(gpu_type)
    if problem is not None:
        raise Nb2PipeError(problem)
    if "/" in gpu_type:
        return GpuPlacement(gpu_type)
    return GpuPlacement(GPU_RESOURCE, gpu_product_label(gpu_type))


def gpu_product_label(name: str) -> str:
    """A GPU's name as PyTorch or nvidia-smi print it (``NVIDIA H100 80GB HBM3``) as GFD labels its nodes."""
    return name.strip().replace(" ", "-")


def gpu_type_problem(gpu_type: str) -> str | None:
    """Why Kubernetes would refuse ``gpu_type`` as a resource name or a node label value; None when fine."""
    if "/" in gpu_type:
        reason = _extended_resource_problem(gpu_type)
        if not reason:
            return None
        return (
            f"GPU type {gpu_type!r} is not an extended resource name: {reason}; write DOMAIN/NAME as your device "
            f"plugin advertises it ({GPU_RESOURCE}, nvidia.com/mig-1g.18gb, amd.com/gpu), or a GPU product without "
            "'/' (NVIDIA-H100-80GB-HBM3)"
        )
    value = gpu_product_label(gpu_type)
    # k8s_names.label_value_problem lets an empty value pass; a GPU product cannot be empty
    reason = k8s_names.name_problem(value, "label value")
    if not reason:
        return None
    shown = repr(gpu_type) + (f" (label value {value!r})" if value != gpu_type else "")
    return (
        f"GPU product {shown} is not a node label value: {reason}; write the product as your nodes' "
        f"{GPU_PRODUCT_LABEL} label has it (kubectl get nodes -L {GPU_PRODUCT_LABEL}), e.g. NVIDIA-H100-80GB-HBM3, "
        f"or a resource name with '/' ({GPU_RESOURCE}, nvidia.com/mig-1g.18gb)"
    )


#: Kubernetes checks an extended resource as the quota name "requests.<name>" too (IsExtendedResourceName)
_QUOTA_PREFIX = "requests."


def _extended_resource_problem(name: str) -> str:
    """Kubernetes' IsExtendedResourceName, in words (pkg/apis/core/helper/helpers.go); empty when fine."""
    domain, _, short = name.partition("/")
    if "/" in short:
        return "it has more than one '/'"
    if "kubernetes.io/" in name:
        return "names in the kubernetes.io namespace are Kubernetes' own resources, not a device plugin's"
    if name.startswith(_QUOTA_PREFIX):
        return "names starting with 'requests.' are resource quota names"
    # the quota name's prefix, "requests." + domain, must be a subdomain too: 9 characters less room
    longest = k8s_names.SUBDOMAIN_MAX - len(_QUOTA_PREFIX)
    domain_problem = k8s_names.subdomain_problem(domain, "part before '/'", longest=longest)
    return domain_problem or k8s_names.name_problem(short, "part after '/'")


def parse_kserve_version(text: str) -> tuple[int, int] | None:
    """``"0.20"``, ``"v0.20.1"`` -> (0, 20); None when not a version."""
    parts = text.strip().removeprefix("v").split(".")
    if not 2 <= len(parts) <= 3 or not all(part.isdigit() for part in parts):
        return None
    return int(parts[0]), int(parts[1])


def namespace_label_problem(label: str) -> str | None:
    """A Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*), or "" for no namespace in the query, else what is wrong."""
    if label == "" or re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", label):
        return None
    return (
        f"Prometheus namespace label {label!r} is not a label name (letters, digits and '_', not starting with a "
        'digit: namespace, kubernetes_namespace; "" for none)'
    )


def standard_mode_problems(settings: DeploySettings) -> list[str]:
    """What KServe's Standard mode (a Deployment scaled by an HPA, or by KEDA) needs for these
    settings to do what Knative does: KEDA asks Prometheus for rps, concurrency and scale to
    zero (nb2pipe.lifecycle.standard_scaling); canaries need KServe 0.20's ``spec.canary``."""
    found: list[str] = []
    keda = settings.scale_metric in _KEDA_METRICS or settings.min_replicas == 0
    what = f"scale metric {settings.scale_metric}" if settings.scale_metric in _KEDA_METRICS else "minimum replicas 0"
    if keda and settings.prometheus_url is None:
        found.append(
            f"{what} in Standard mode scales through KEDA, which asks Prometheus (KServe's HPA has no such "
            "metric): give the Prometheus URL with --prometheus-url or metadata nb2pipe.deploy.prometheus_url, "
            "or use mode:knative"
        )
    if settings.min_replicas == 0 and settings.scale_query is None:
        found.append(
            "minimum replicas 0 in Standard mode: no pod reports the request metric KEDA scales on while none "
            "runs, so the service would never come back, and Standard mode has no activator to hold requests: "
            "use mode:knative to scale to zero, keep at least 1 replica, or give --scale-query with a metric that "
            "exists at zero replicas (your ingress or gateway's request rate for this service)"
        )
    if keda and settings.runtime == "mlserver" and settings.scale_query is None:
        found.append(
            f"{what} in Standard mode with runtime mlserver: MLServer does not export the request_predict_seconds "
            "metric nb2pipe's KEDA query reads: give --scale-query with MLServer's metric, or another runtime"
        )
    if settings.scale_query is not None and not keda:
        found.append(
            "a scale query is read only by KEDA, which Standard mode uses for rps, concurrency or minimum "
            "replicas 0: drop --scale-query, or scale on rps or concurrency"
        )
    if settings.canary_percent is not None:
        found += _standard_canary_problems(settings, settings.canary_percent)
    return found


#: the metrics Standard mode scales on through KEDA (standard_scaling.KEDA_METRICS)
_KEDA_METRICS = ("rps", "concurrency")
#: KServe 0.20 added spec.canary, Standard mode's canary
_CANARY_SINCE = (0, 20)


def _standard_canary_problems(settings: DeploySettings, percent: int) -> list[str]:
    version = parse_kserve_version(settings.kserve_version) if settings.kserve_version else None
    if version is None or version < _CANARY_SINCE:
        running = f"KServe {settings.kserve_version}" if version else "an unknown KServe version"
        return [
            f"canary {percent}% in Standard mode for {running}: canaries in Standard mode need KServe 0.20 "
            "(spec.canary): give --kserve-version 0.20 if your cluster runs it, or use mode:knative"
        ]
    if settings.min_replicas == 0:
        return [
            f"canary {percent}% with minimum replicas 0 in Standard mode: KServe gives a canary "
            "ceil(stable minReplicas x percent / 100) fixed replicas, none here: keep at least 1 replica, "
            "or use mode:knative"
        ]
    return []


def logger_problems(settings: DeploySettings) -> list[str]:
    """Why KServe's payload logger would lose what ``settings`` send it; empty when fine."""
    url = settings.logger_url
    if not settings.monitor or not url:
        return []
    scheme = urlsplit(url).scheme
    if url.startswith("s3a://"):
        return [f"payload log URL {url}: KServe's logger agent has no s3a storage provider; write s3://"]
    # KServe sorts sinks by prefix, case-sensitively: anything else is POSTed as CloudEvents
    if not url.startswith(("http://", "https://", *(f"{name}://" for name in LOGGER_BLOB_SCHEMES))):
        return [
            f"payload log URL {url}: KServe's logger sends to http(s):// (CloudEvents) or stores objects in "
            "s3://, gs:// or abfs:// (lowercase); it has no pvc:// or file:// sink, so these payloads would be lost"
        ]
    if scheme in LOGGER_BLOB_SCHEMES and not _bucket(url):
        return [f"payload log URL {url} names no bucket: write {scheme}://BUCKET/PREFIX"]
    return []


def _bucket(url: str) -> str:
    parts = urlsplit(url)
    # KServe's parseBlobStoreURL: the host, or for Azure the user part (container@account)
    return parts.username or parts.hostname or ""
