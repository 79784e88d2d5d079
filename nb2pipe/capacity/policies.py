"""Scaling policies the simulator compares: small classes behind a registry.

Each policy starts the pool with a configuration and may change it at the times it asks
for. ``static`` and ``reactive`` run one fixed serving configuration (the baseline: one
variant at one batch size, as a plain deployment does); ``planner`` and ``oracle`` choose
variants, batch sizes and replicas per interval with :class:`~nb2pipe.capacity.optimize.Optimizer`
— the planner from its forecast, the oracle from the future it is shown.
"""

from __future__ import annotations

import difflib
import math
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from nb2pipe.capacity.engine import WindowStats
from nb2pipe.capacity.forecast import OnlineForecaster
from nb2pipe.capacity.model import VariantOption
from nb2pipe.capacity.optimize import Allocation, Optimizer
from nb2pipe.capacity.trace import interval_peaks
from nb2pipe.errors import Nb2PipeError

#: the planner checks this often (s) whether a forecast fell short...
CHECK_S = 5.0
#: ...which it calls a queue of this many seconds of planned capacity, still growing...
TRIGGER_S = 0.1
#: ...and then starts replicas for the rate it sees, with this headroom, until the forecasts
#: (which now see that rate) take over
SURGE_HEADROOM = 1.2


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


class StaticPeak(Policy):
    name = "static"
    summary = "the baseline configuration sized once for the history's peak"

    def start(self) -> Config:
        peak = float(self.setup.history.max()) if self.setup.history.size else float(self.setup.rates.max())
        return self.setup.fixed(max(1, math.ceil(peak / self.setup.baseline.rate_per_replica)))


class ReactiveHPA(Policy):
    name = "reactive"
    summary = (
        "HPA-like: every 15 s, replicas = ceil(current x metric / target), 10 % tolerance, 5 min scale-down window"
    )

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        self.settings = setup.reactive
        self.replicas = 0
        self.recommendations: deque[tuple[float, int]] = deque()

    def start(self) -> Config:
        opening = float(self.setup.rates[:60].mean()) if self.setup.rates.size else 0.0
        self.replicas = self._bounded(
            math.ceil(opening / (self.setup.baseline.rate_per_replica * self.settings.target))
        )
        return self.setup.fixed(self.replicas)

    def next_decision(self, now: float) -> float | None:
        return now + self.settings.period_s

    def decide(self, now: float, window: WindowStats) -> Config | None:
        settings = self.settings
        baseline = self.setup.index(self.setup.baseline.name)
        busy_s, arrivals = window.busy_s[baseline], window.arrivals[baseline]
        ready_replica_s = window.ready_replica_s[baseline]
        if settings.metric == "utilization":
            # unready replicas count as idle, as HPA counts pods without metrics on the way up
            load = busy_s / settings.period_s
            wanted = math.ceil(load / settings.target - 1e-9)
            ratio = (busy_s / ready_replica_s) / settings.target if ready_replica_s > 0 else 1.0
        else:
            rate = arrivals / settings.period_s
            wanted = math.ceil(rate / (settings.target * self.setup.baseline.rate_per_replica) - 1e-9)
            ratio = wanted / max(self.replicas, 1)
        if abs(ratio - 1) <= settings.tolerance:
            wanted = self.replicas
        wanted = self._bounded(wanted)
        self.recommendations.append((now, wanted))
        while self.recommendations and self.recommendations[0][0] < now - settings.scale_down_window_s:
            self.recommendations.popleft()
        if wanted > self.replicas:
            # HPA's default scale-up policy: at most double, or add 4, per period
            target = min(wanted, max(2 * self.replicas, self.replicas + 4))
        else:
            target = max(r for _, r in self.recommendations)  # scale down only to the window's highest
            target = min(target, self.replicas)
        if target == self.replicas:
            return None
        self.replicas = target
        return self.setup.fixed(target)

    def _bounded(self, replicas: int) -> int:
        return min(max(replicas, self.settings.min_replicas), self.settings.max_replicas)


class _Scheduled(Policy):
    """Allocations per interval, provisioned one cold start ahead and released when over."""

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        peaks = self.forecasts()
        self.allocations = [setup.optimizer.best(p) for p in peaks]
        self.configs = [setup.from_allocation(a) for a in self.allocations]
        interval, lead = setup.interval_s, setup.cold_start_s
        events = {float(k * interval) for k in range(len(self.configs))}
        events |= {k * interval - lead for k in range(1, len(self.configs)) if k * interval - lead > 0}
        self.events = sorted(events)
        self.position = 0

    @abstractmethod
    def forecasts(self) -> np.ndarray: ...

    def start(self) -> Config:
        self.position = 1  # event 0 is time 0, the start
        return self._config_at(0.0)

    def next_decision(self, now: float) -> float | None:
        while self.position < len(self.events) and self.events[self.position] <= now:
            self.position += 1
        return self.events[self.position] if self.position < len(self.events) else None

    def decide(self, now: float, window: WindowStats) -> Config | None:
        return self._config_at(now)

    def _config_at(self, now: float) -> Config:
        interval, lead = self.setup.interval_s, self.setup.cold_start_s
        current = min(int(now // interval), len(self.configs) - 1)
        # every interval that has begun, or whose replicas must start now to be ready in time
        last = min(int((now + lead) // interval), len(self.configs) - 1)
        config = self.configs[current]
        replicas = tuple(
            max(self.configs[k].replicas[i] for k in range(current, last + 1)) for i in range(len(config.replicas))
        )
        return Config(replicas, config.batch_sizes, config.split)


class Planner(_Scheduled):
    name = "planner"
    summary = "forecast each interval's peak one cold start ahead, then the exact variant/batch/replica search"

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        #: per variant: (replicas, until when) added because a forecast fell short
        self.boosts: list[tuple[int, float]] = [(0, 0.0)] * len(setup.options)

    def next_decision(self, now: float) -> float | None:
        planned = super().next_decision(now)
        # between planned changes, look every few seconds for a forecast that fell short
        return None if planned is None else min(planned, now + CHECK_S)

    def decide(self, now: float, window: WindowStats) -> Config | None:
        config = self._config_at(now)
        seconds = window.end - window.start
        replicas = list(config.replicas)
        for i, option in enumerate(self.setup.options):
            capacity = replicas[i] * option.rate_per_replica
            rate = window.arrivals[i] / seconds if seconds > 0 else 0.0
            # a queue longer than a tenth of a second of the planned capacity and still growing
            if window.queued[i] > TRIGGER_S * max(capacity, option.rate_per_replica) and rate > capacity:
                needed = math.ceil(rate * SURGE_HEADROOM / option.rate_per_replica)
                until = now + self.setup.cold_start_s + 2 * self.setup.interval_s
                self.boosts[i] = (max(needed, self.boosts[i][0] if self.boosts[i][1] > now else 0), until)
            boost, until = self.boosts[i]
            if until > now:
                replicas[i] = max(replicas[i], boost)
        return Config(tuple(replicas), config.batch_sizes, config.split)

    def forecasts(self) -> np.ndarray:
        setup = self.setup
        if setup.forecaster is None:
            raise Nb2PipeError("the planner policy needs a fitted forecaster")
        observed = np.concatenate([setup.history, setup.rates])
        first = setup.history.size // setup.interval_s
        count = -(-setup.rates.size // setup.interval_s)
        if setup.history.size % setup.interval_s:
            raise Nb2PipeError("the history must be a whole number of intervals")
        return setup.forecaster.predict(observed, first, count)


class Oracle(_Scheduled):
    name = "oracle"
    summary = "the same search fed each interval's true peak: a lower bound no forecast reaches"

    def forecasts(self) -> np.ndarray:
        return interval_peaks(self.setup.rates, self.setup.interval_s)


POLICIES: dict[str, type[Policy]] = {p.name: p for p in (StaticPeak, ReactiveHPA, Planner, Oracle)}


def policy_named(name: str) -> type[Policy]:
    found = POLICIES.get(name)
    if found is None:
        close = difflib.get_close_matches(name, POLICIES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise Nb2PipeError(f"no policy named {name!r}{hint} (policies: {', '.join(POLICIES)})")
    return found
