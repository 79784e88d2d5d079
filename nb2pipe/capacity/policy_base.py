"""What every simulated scaling policy shares: the pool's configuration, what a policy may know
(:class:`Setup`), the :class:`Policy` interface and HPA's stabilisation rules."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from nb2pipe.capacity.engine import WindowStats
from nb2pipe.capacity.forecast import OnlineForecaster
from nb2pipe.capacity.model import VariantOption
from nb2pipe.capacity.optimize import Allocation, Optimizer
from nb2pipe.capacity.plan import CapacityPlan
from nb2pipe.capacity.trace import DAY_S


@dataclass(frozen=True)
class Config:
    """What the pool runs: per variant (in the simulation's variant order)."""

    replicas: tuple[int, ...]
    batch_sizes: tuple[int, ...]
    split: tuple[float, ...]


@dataclass(frozen=True)
class Reactive:
    """HPA-like settings (Kubernetes' defaults where it has them)."""

    period_s: float = 15.0
    tolerance: float = 0.1
    scale_down_window_s: float = 300.0
    #: utilization: busy share of ready replicas (like CPU); rps: requests/s per replica
    metric: str = "utilization"
    #: target utilization (0..1) or, for rps, the share of the SLO rate a replica should carry
    target: float = 0.7
    min_replicas: int = 1
    max_replicas: int = 1000


@dataclass(frozen=True)
class Setup:
    """Everything a policy may know before the simulated days begin."""

    rates: np.ndarray  # the simulated days, requests/s
    history: np.ndarray  # the days before them (what forecasts are fitted on)
    options: tuple[VariantOption, ...]  # the variants, in simulation order
    baseline: VariantOption  # the one fixed configuration of static and reactive
    cold_start_s: float
    interval_s: int
    optimizer: Optimizer
    forecaster: OnlineForecaster | None = None
    reactive: Reactive = field(default_factory=Reactive)
    #: the plan the ``plan`` and ``deployed`` policies replay
    plan: CapacityPlan | None = None
    #: where ``rates[0]`` is in the trace (s): a plan's intervals are placed by it
    start_s: int = 0

    def index(self, name: str) -> int:
        return next(i for i, o in enumerate(self.options) if o.name == name)

    def fixed(self, replicas: int) -> Config:
        """``replicas`` of the baseline variant at its batch size, all the traffic."""
        chosen = self.index(self.baseline.name)
        counts = tuple(replicas if i == chosen else 0 for i in range(len(self.options)))
        batches = tuple(self.baseline.batch_size if i == chosen else o.batch_size for i, o in enumerate(self.options))
        return Config(counts, batches, tuple(1.0 if i == chosen else 0.0 for i in range(len(self.options))))

    def from_allocation(self, allocation: Allocation) -> Config:
        replicas = [0] * len(self.options)
        split = [0.0] * len(self.options)
        batches = [o.batch_size for o in self.options]
        for share in allocation.shares:
            i = self.index(share.variant)
            replicas[i], split[i], batches[i] = share.replicas, share.traffic, share.batch_size
        return Config(tuple(replicas), tuple(batches), tuple(split))


class Policy(ABC):
    name: ClassVar[str]
    summary: ClassVar[str]
    #: whether it forecasts with the fitted online forecaster (``Setup.forecaster``)
    needs_forecaster: ClassVar[bool] = False

    def __init__(self, setup: Setup) -> None:
        self.setup = setup

    @abstractmethod
    def start(self) -> Config: ...

    def next_decision(self, now: float) -> float | None:
        """When the policy next wants to look (None: never again)."""
        return None

    def decide(self, now: float, window: WindowStats) -> Config | None:
        """The configuration from ``now`` on (None keeps the current one), seeing what the pool
        did since the previous decision."""
        return None

    def settings(self) -> dict[str, object]:
        """What this run ran with, for its report (JSON-ready)."""
        return {}

    def _baseline_settings(self) -> dict[str, object]:
        baseline = self.setup.baseline
        return {
            "variant": baseline.name,
            "batch_size": baseline.batch_size,
            "rps_per_replica": round(baseline.rate_per_replica, 3),
        }


class Stabilizer:
    """HPA's rules once the metric has spoken: the tolerance, the bounds, at most double (or +4)
    per period on the way up, and on the way down only to the highest recommendation of the
    scale-down window."""

    def __init__(self, knobs: Reactive, low: int, high: int) -> None:
        self.knobs, self.low, self.high = knobs, low, high
        self.replicas = 0
        self.recommendations: deque[tuple[float, int]] = deque()

    def bounded(self, replicas: int) -> int:
        return min(max(replicas, self.low), self.high)

    def step(self, now: float, wanted: int, ratio: float) -> bool:
        """Move to what the rules allow towards ``wanted``; whether the replicas changed."""
        if abs(ratio - 1) <= self.knobs.tolerance:
            wanted = self.replicas
        wanted = self.bounded(wanted)
        self.recommendations.append((now, wanted))
        while self.recommendations and self.recommendations[0][0] < now - self.knobs.scale_down_window_s:
            self.recommendations.popleft()
        if wanted > self.replicas:
            target = min(wanted, max(2 * self.replicas, self.replicas + 4))
        else:
            target = min(max(r for _, r in self.recommendations), self.replicas)
        changed = target != self.replicas
        self.replicas = target
        return changed


def plan_span(plan: CapacityPlan) -> tuple[int, int]:
    """The trace seconds [first, last) a plan's intervals cover."""
    return plan.intervals[0].start_s, plan.intervals[-1].start_s + plan.interval_s


def days_text(first_s: int, end_s: int) -> str:
    first, last = first_s // DAY_S + 1, -(-end_s // DAY_S)
    return f"day {first}" if first == last else f"days {first}-{last}"
