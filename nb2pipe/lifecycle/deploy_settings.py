"""Checks on :class:`~nb2pipe.ir.DeploySettings` shared by tags, metadata and the CLI."""

from __future__ import annotations

from nb2pipe.ir import DeploySettings

SCALE_METRICS = ("concurrency", "rps", "cpu", "memory")


def is_service_name(text: str) -> bool:
    """A DNS-1123 label, as Kubernetes names an InferenceService: a-z, 0-9, '-', 63 at most."""
    return (
        0 < len(text) <= 63
        and text.isascii()
        and all(ch.islower() or ch.isdigit() or ch == "-" for ch in text)
        and text[0].isalpha()
        and text[-1] != "-"
    )


def problems(settings: DeploySettings) -> list[str]:
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
    return found
