"""Scaling policies the simulator compares: small classes behind a registry.

Each policy starts the pool with a configuration and may change it at the times it asks
for. ``static`` and ``reactive`` run one fixed serving configuration (the baseline: one
variant at one batch size, as a plain deployment does); ``reactive-batched`` the same variant at
the batch size the planner's search gives it; ``planner`` and ``oracle`` choose variants, batch
sizes and replicas per interval with :class:`~nb2pipe.capacity.optimize.Optimizer` — the planner
from its forecast, the oracle from the future it is shown; ``plan`` replays a plan file's
per-interval allocations. Each says what it ran with (:meth:`Policy.settings`), for the report.
"""

from __future__ import annotations

import difflib
import math
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from typing import ClassVar

import numpy as np

from nb2pipe.capacity.engine import WindowStats
from nb2pipe.capacity.forecast import OnlineForecaster
from nb2pipe.capacity.model import VariantOption
from nb2pipe.capacity.optimize import Allocation, Optimizer
from nb2pipe.capacity.plan import CapacityPlan, PlanError
from nb2pipe.capacity.trace import DAY_S, interval_peaks
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


class StaticPeak(Policy):
    name = "static"
    summary = "the baseline configuration sized once for the history's peak"
    replicas = 0

    def start(self) -> Config:
        peak = float(self.setup.history.max()) if self.setup.history.size else float(self.setup.rates.max())
        self.replicas = max(1, math.ceil(peak / self.setup.baseline.rate_per_replica))
        return self.setup.fixed(self.replicas)

    def settings(self) -> dict[str, object]:
        return dict(self._baseline_settings(), replicas=self.replicas, sized_for="the history's peak")


class _Stabilizer:
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


class ReactiveHPA(Policy):
    name = "reactive"
    summary = (
        "HPA-like: every 15 s, replicas = ceil(current x metric / target), 10 % tolerance, 5 min scale-down window"
    )

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        self.knobs = setup.reactive
        self.scaler = _Stabilizer(self.knobs, self.knobs.min_replicas, self.knobs.max_replicas)

    def start(self) -> Config:
        opening = float(self.setup.rates[:60].mean()) if self.setup.rates.size else 0.0
        wanted = math.ceil(opening / (self.setup.baseline.rate_per_replica * self.knobs.target))
        self.scaler.replicas = self.scaler.bounded(wanted)
        return self.setup.fixed(self.scaler.replicas)

    def next_decision(self, now: float) -> float | None:
        return now + self.knobs.period_s

    def decide(self, now: float, window: WindowStats) -> Config | None:
        settings = self.knobs
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
            ratio = wanted / max(self.scaler.replicas, 1)
        if not self.scaler.step(now, wanted, ratio):
            return None
        return self.setup.fixed(self.scaler.replicas)

    def settings(self) -> dict[str, object]:
        return dict(self._baseline_settings(), **asdict(self.setup.reactive))


class ReactiveBatched(ReactiveHPA):
    name = "reactive-batched"
    summary = (
        "the reactive policy on the baseline variant at the planner's batch size, scaling on requests/s "
        "(utilization saturates once a replica batches)"
    )

    def __init__(self, setup: Setup) -> None:
        batched = next((o for o in setup.options if o.name == setup.baseline.name), None)
        if batched is None:
            raise Nb2PipeError(f"reactive-batched: the baseline variant {setup.baseline.name!r} is not simulated")
        super().__init__(replace(setup, baseline=batched, reactive=replace(setup.reactive, metric="rps")))


class _Scheduled(Policy):
    """Allocations per interval, provisioned one cold start ahead and released when over."""

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        self.interval_s = setup.interval_s
        self.allocations = self.schedule()
        self.configs = [setup.from_allocation(a) for a in self.allocations]
        interval, lead = self.interval_s, setup.cold_start_s
        events = {float(k * interval) for k in range(len(self.configs))}
        events |= {k * interval - lead for k in range(1, len(self.configs)) if k * interval - lead > 0}
        self.events = sorted(events)
        self.position = 0

    def schedule(self) -> list[Allocation]:
        """One allocation per interval of the simulated days."""
        return [self.setup.optimizer.best(p) for p in self.forecasts()]

    def forecasts(self) -> np.ndarray:
        raise NotImplementedError

    def settings(self) -> dict[str, object]:
        return {"interval_s": self.interval_s, "provisioned_ahead_s": self.setup.cold_start_s}

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
        interval, lead = self.interval_s, self.setup.cold_start_s
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

    def settings(self) -> dict[str, object]:
        forecaster = self.setup.forecaster
        found = super().settings()
        found["forecast"] = forecaster.describe() if forecaster is not None else None
        found["surge_check"] = {"every_s": CHECK_S, "queue_s": TRIGGER_S, "headroom": SURGE_HEADROOM}
        return found


class Oracle(_Scheduled):
    name = "oracle"
    summary = "the same search fed each interval's true peak: a lower bound no forecast reaches"

    def forecasts(self) -> np.ndarray:
        return interval_peaks(self.setup.rates, self.setup.interval_s)


class PlanReplay(_Scheduled):
    name = "plan"
    summary = "a plan file's per-interval allocations (nb2pipe plan -o), each provisioned one cold start ahead"

    def schedule(self) -> list[Allocation]:
        plan = self.setup.plan
        if plan is None:
            raise Nb2PipeError("the plan policy replays a plan: give --plan PLAN.json")
        self.interval_s = plan.interval_s
        known = {o.name for o in self.setup.options}
        missing = sorted({s.variant for i in plan.intervals for s in i.allocation.shares} - known)
        if missing:
            raise PlanError(
                f"the plan serves {', '.join(missing)}, which the simulation does not have (variants: "
                f"{', '.join(sorted(known))}); give the profile the plan was made from, or --variants"
            )
        by_start = {i.start_s: i.allocation for i in plan.intervals}
        start = self.setup.start_s
        count = -(-self.setup.rates.size // plan.interval_s)
        gaps = [start + k * plan.interval_s for k in range(count) if start + k * plan.interval_s not in by_start]
        if gaps:
            first, last = plan_span(plan)
            raise PlanError(
                f"the plan covers seconds {first:,}-{last:,} of the trace ({days_text(first, last)}) in steps of "
                f"{plan.interval_s} s; the simulated days need second {gaps[0]:,} too: simulate the plan's days "
                "(leave out --days) or make a plan for these days"
            )
        return [by_start[start + k * plan.interval_s] for k in range(count)]

    def settings(self) -> dict[str, object]:
        # the plan's own figures (over its whole horizon), next to what the simulation measured
        from nb2pipe.capacity.deployment import plan_accuracy

        plan = self.setup.plan
        found = super().settings()
        if plan is not None:
            expected = plan_accuracy(plan)
            found.update(
                plan_slo_ms=plan.slo_ms,
                plan_cold_start_s=plan.cold_start_s,
                forecast=plan.forecast,
                plan_replica_hours=round(plan.replica_hours, 3),
                plan_accuracy=None if expected is None else round(expected, 5),
            )
        return found


class DeployedPlan(Policy):
    name = "deployed"
    summary = (
        "what deploy --plan deploys from --plan: its one fixed split and batchers, each variant scaled on "
        "requests/s (the reactive rules, at 70 % of its scaleTarget) within its minReplicas..maxReplicas"
    )
    #: KServe's (Knative's) default target utilisation of ``scaleTarget``
    TARGET_UTILIZATION = 0.7

    def __init__(self, setup: Setup) -> None:
        from nb2pipe.capacity.deployment import deployed_split

        super().__init__(setup)
        if setup.plan is None:
            raise Nb2PipeError("the deployed policy sizes what deploy --plan deploys: give --plan PLAN.json")
        self.split, entries = deployed_split(setup.plan)
        known = {o.name for o in setup.options}
        missing = sorted(e.variant for e in entries if e.variant not in known)
        if missing:
            raise PlanError(
                f"the plan deploys {', '.join(missing)}, which the simulation does not have (variants: "
                f"{', '.join(sorted(known))}); give the profile the plan was made from, or --variants"
            )
        self.knobs = replace(setup.reactive, metric="rps", target=self.TARGET_UTILIZATION)
        self.entries = {setup.index(e.variant): e for e in entries}
        self.scalers = {
            i: _Stabilizer(self.knobs, e.min_replicas, max(e.max_replicas, 1)) for i, e in self.entries.items()
        }

    def start(self) -> Config:
        opening = float(self.setup.rates[:60].mean()) if self.setup.rates.size else 0.0
        for i, entry in self.entries.items():
            share = entry.traffic_percent / 100 * opening
            self.scalers[i].replicas = self.scalers[i].bounded(math.ceil(share / self._per_replica(i) - 1e-9))
        return self._config()

    def next_decision(self, now: float) -> float | None:
        return now + self.knobs.period_s

    def decide(self, now: float, window: WindowStats) -> Config | None:
        changed = False
        for i, scaler in self.scalers.items():
            wanted = math.ceil(window.arrivals[i] / self.knobs.period_s / self._per_replica(i) - 1e-9)
            changed |= scaler.step(now, wanted, wanted / max(scaler.replicas, 1))
        return self._config() if changed else None

    def _per_replica(self, i: int) -> float:
        """The rate KServe's autoscaler keeps a replica at."""
        return self.TARGET_UTILIZATION * self.entries[i].scale_target

    def _config(self) -> Config:
        count = len(self.setup.options)
        replicas = tuple(self.scalers[i].replicas if i in self.scalers else 0 for i in range(count))
        batches = tuple(
            self.entries[i].max_batch_size if i in self.entries else o.batch_size
            for i, o in enumerate(self.setup.options)
        )
        split = tuple(self.entries[i].traffic_percent / 100 if i in self.entries else 0.0 for i in range(count))
        return Config(replicas, batches, split)

    def settings(self) -> dict[str, object]:
        return {
            "split": dict(self.split.percents),
            "split_rule": self.split.rule,
            "expected_accuracy": None
            if self.split.expected_accuracy is None
            else round(self.split.expected_accuracy, 5),
            "plan_accuracy": None if self.split.plan_accuracy is None else round(self.split.plan_accuracy, 5),
            "kserve": [
                {
                    "variant": e.variant,
                    "min_replicas": e.min_replicas,
                    "max_replicas": e.max_replicas,
                    "scale_target_rps": e.scale_target,
                    "max_batch_size": e.max_batch_size,
                }
                for e in self.entries.values()
            ],
            # the bounds are each variant's own (kserve above), not the reactive policy's
            "autoscaler": {k: v for k, v in asdict(self.knobs).items() if k not in ("min_replicas", "max_replicas")},
        }


def plan_span(plan: CapacityPlan) -> tuple[int, int]:
    """The trace seconds [first, last) a plan's intervals cover."""
    return plan.intervals[0].start_s, plan.intervals[-1].start_s + plan.interval_s


def days_text(first_s: int, end_s: int) -> str:
    first, last = first_s // DAY_S + 1, -(-end_s // DAY_S)
    return f"day {first}" if first == last else f"days {first}-{last}"


POLICIES: dict[str, type[Policy]] = {
    p.name: p for p in (StaticPeak, ReactiveHPA, ReactiveBatched, Planner, Oracle, PlanReplay, DeployedPlan)
}


def policy_named(name: str) -> type[Policy]:
    found = POLICIES.get(name)
    if found is None:
        close = difflib.get_close_matches(name, POLICIES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise Nb2PipeError(f"no policy named {name!r}{hint} (policies: {', '.join(POLICIES)})")
    return found
