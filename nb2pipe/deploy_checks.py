"""Checks of :class:`~nb2pipe.ir.DeploySettings` that need no cluster: what KServe would
reject or misread in each deployment mode, in words a user can act on."""

from __future__ import annotations

from urllib.parse import urlsplit

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
    if settings.mode == "knative" and settings.scale_metric == "memory":
        # Knative's HPA class makes the target MiB per replica (an AverageValue), and KServe's
        # webhook refuses any target above 100: not the % of the request it is in Standard mode
        found.append(
            "scale metric memory in Knative mode: Knative's HPA class reads the target as MiB per replica, and "
            "KServe refuses targets above 100: use mode:standard (memory in % of the request), or scale:cpu"
        )
    return found


def parse_kserve_version(text: str) -> tuple[int, int] | None:
    """``"0.20"``, ``"v0.20.1"`` -> (0, 20); None when not a version."""
    parts = text.strip().removeprefix("v").split(".")
    if not 2 <= len(parts) <= 3 or not all(part.isdigit() for part in parts):
        return None
    return int(parts[0]), int(parts[1])


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
