"""The vocabulary of ``nb2pipe autoscale``: what the control loop decides, what it reads the
request rate from, and what applies a decision. The loop (``capacity.autoscale``) is the same
on a cluster and on this machine; only the rate source (Prometheus, the same queries) and the
actuator (KServe resources through the Kubernetes API, or a local serving group of ``nb2pipe
serve`` replicas behind a router) differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

# The surge check the simulator's planner and the live loop share: every CHECK_S seconds, a
# queue of more than TRIGGER_S seconds of planned capacity that still grows (the simulator; the
# loop sees the rate instead) starts replicas for the rate seen times SURGE_HEADROOM at once.
CHECK_S = 5.0
TRIGGER_S = 0.1
SURGE_HEADROOM = 1.2


@dataclass(frozen=True)
class VariantSetting:
    """How one variant is to be served until the next decision."""

    variant: str
    #: replicas that must be ready: on a cluster KServe's ``minReplicas`` (a predictive floor,
    #: KServe's own autoscaler still reacts above it), locally the replicas that run
    replicas: int
    #: the most replicas KServe's autoscaler may add (locally: the same as ``replicas``)
    max_replicas: int
    #: KServe's batcher: requests merged into batches of at most this many...
    batch_size: int
    #: ...waiting at most this long (ms) for a batch to fill
    max_latency_ms: int
    #: whole percent of the traffic this variant gets; the variants' percents add up to 100
    percent: int

    def to_json(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "replicas": self.replicas,
            "max_replicas": self.max_replicas,
            "batch_size": self.batch_size,
            "max_latency_ms": self.max_latency_ms,
            "percent": self.percent,
        }


@dataclass(frozen=True)
class Decision:
    """One turn of the loop: what it saw, what it expects, what it chose and why."""

    #: when it was taken (epoch seconds)
    at: float
    #: the request rate read for the last window (requests/s); None when the metrics were missing
    observed_rps: float | None
    #: the forecast peak of the interval the decision provisions for (requests/s)
    forecast_rps: float
    settings: tuple[VariantSetting, ...]
    #: why, in words ("forecast 412 req/s for 10:05-10:10", "surge: 630 req/s queued over plan",
    #: "no request rate for 90 s: keeping the last safe floor")
    reason: str
    #: the metrics were missing and the last safe floor was kept instead of a new decision
    fallback: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "at": round(self.at, 3),
            "observed_rps": None if self.observed_rps is None else round(self.observed_rps, 3),
            "forecast_rps": round(self.forecast_rps, 3),
            "settings": [setting.to_json() for setting in self.settings],
            "reason": self.reason,
            "fallback": self.fallback,
        }


class RateSource(Protocol):
    """Where the loop reads the live request rate (a Prometheus HTTP API, on a cluster and here)."""

    def request_rate(self, window_s: float) -> float | None:
        """Requests per second over the last ``window_s`` seconds, all variants together; None
        when there is no answer (no samples, the server unreachable or slow)."""
        ...

    def recent_rates(self, seconds: float, step_s: float) -> list[float | None]:
        """The rate at every ``step_s`` over the last ``seconds`` (oldest first, None where no
        sample): what the forecaster is fed when the loop starts or resumes."""
        ...


class Actuator(Protocol):
    """What applies a decision: KServe resources on a cluster, a local serving group here."""

    def current(self) -> tuple[VariantSetting, ...] | None:
        """What runs now, read back (the loop resumes from it after a restart); None when
        nothing is deployed yet."""
        ...

    def apply(self, decision: Decision) -> None:
        """Make the decision's settings the running ones (idempotent: applying the current
        settings again changes nothing)."""
        ...
