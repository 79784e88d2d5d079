"""Checks of :class:`~nb2pipe.ir.DeploySettings` that need no cluster: what KServe would
reject or misread in each deployment mode, in words a user can act on."""

from __future__ import annotations

from nb2pipe.ir import DEPLOY_MODES, RUNTIME_CHOICES, SCALE_METRICS, DeploySettings


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
    if settings.runtime is not None and settings.runtime not in RUNTIME_CHOICES:
        found.append(f"runtime {settings.runtime!r} is not one of {', '.join(RUNTIME_CHOICES)}")
    if settings.kserve_version is not None and parse_kserve_version(settings.kserve_version) is None:
        found.append(f"KServe version {settings.kserve_version!r} is not MAJOR.MINOR[.PATCH] (e.g. 0.20)")
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
    """What KServe's Standard mode (a Deployment scaled by an HPA) cannot do with these settings
    without KEDA or ``spec.canary``, which nb2pipe does not write yet: KServe would admit them
    and then scale on CPU, keep a replica, or send all traffic to the new version."""
    found: list[str] = []
    if settings.scale_metric in ("rps", "concurrency"):
        found.append(
            f"scale metric {settings.scale_metric} in Standard mode needs KEDA (KServe's HPA has no "
            f"{settings.scale_metric} metric and would scale on CPU): use mode:knative, or scale:cpu; "
            "KEDA support is planned"
        )
    if settings.min_replicas == 0:
        found.append(
            "minimum replicas 0 in Standard mode needs KEDA (KServe's HPA keeps at least one replica): "
            "use mode:knative to scale to zero, or at least 1 replica; KEDA support is planned"
        )
    if settings.canary_percent is not None:
        found.append(
            f"canary {settings.canary_percent}% in Standard mode: KServe ignores canaryTrafficPercent there and "
            "nb2pipe does not write spec.canary (KServe 0.20) yet: use mode:knative for a canary, or deploy "
            "without one"
        )
    return found
