"""``nb2pipe simulate``: replay a trace through a replica pool under one scaling policy.

The pool is :class:`~nb2pipe.capacity.engine.PoolSimulation` (Poisson arrivals at each
second's rate, the profile's service times, dynamic batching, cold starts); the policy
changes it at the times it asks for. The report gives what the issue asks for: cost,
SLO violations, p99, mean accuracy and reconfigurations, and what the run ran with.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from nb2pipe.capacity.forecast import OnlineForecaster
from nb2pipe.capacity.model import VariantOption, service_times
from nb2pipe.capacity.optimize import Optimizer
from nb2pipe.capacity.plan import CapacityPlan
from nb2pipe.capacity.policies import Reactive, Setup, policy_named
from nb2pipe.capacity.profile import Profile

#: with a progress callback, a pool no policy looks at any more (static's) is advanced in steps
#: of this many simulated seconds, to report its progress
PROGRESS_STEP_S = 3600.0


@dataclass(frozen=True)
class Scenario:
    """The simulated world: days of a trace, the serving model, prices."""

    rates: np.ndarray
    history: np.ndarray
    profile: Profile
    options: tuple[VariantOption, ...]
    baseline: VariantOption
    slo_ms: float
    cold_start_s: float = 30.0
    interval_s: int = 30
    price_per_replica_hour: float = 1.0
    accuracy_value: float = 1.0
    seed: int = 0
    reactive: Reactive = field(default_factory=Reactive)
    #: the plan the ``plan`` and ``deployed`` policies replay
    plan: CapacityPlan | None = None
    #: where the simulated days begin in the trace (s)
    start_s: int = 0

    def settings(self) -> dict[str, object]:
        """The world every run of this scenario shares."""
        return {
            "start_s": self.start_s,
            "seconds": int(self.rates.size),
            "slo_ms": self.slo_ms,
            "cold_start_s": self.cold_start_s,
            "interval_s": self.interval_s,
            "price_per_replica_hour": self.price_per_replica_hour,
            "accuracy_value": self.accuracy_value,
            "seed": self.seed,
            "variants": [o.name for o in self.options],
        }


@dataclass(frozen=True)
class Report:
    policy: str
    seconds: float
    requests: int
    cost: float
    replica_hours: float
    violation_percent: float
    p99_ms: float
    mean_latency_ms: float
    mean_accuracy: float | None
    reconfigurations: int
    wall_s: float
    #: what the policy ran with (its variant, batch size, metric, forecast...), JSON-ready
    settings: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in vars(self).items()}


def simulate(
    scenario: Scenario,
    policy_name: str,
    forecaster: OnlineForecaster | None = None,
    progress: Callable[[float], None] | None = None,
) -> Report:
    """One run; ``progress`` (if given) is called with the share of the days simulated so far."""
    from nb2pipe.capacity.engine import PoolSimulation

    started = time.perf_counter()
    policy_type = policy_named(policy_name)
    options = scenario.options
    setup = Setup(
        scenario.rates,
        scenario.history,
        options,
        scenario.baseline,
        scenario.cold_start_s,
        scenario.interval_s,
        Optimizer(options, scenario.accuracy_value),
        forecaster,
        scenario.reactive,
        scenario.plan,
        scenario.start_s,
    )
    policy = policy_type(setup)
    services = [service_times(scenario.profile.variant(o.name)) for o in options]
    pool = PoolSimulation(
        scenario.rates,
        services,
        slo_s=scenario.slo_ms / 1000.0,
        cold_start_s=scenario.cold_start_s,
        seed=scenario.seed,
    )
    end = float(scenario.rates.size)
    config = policy.start()
    pool.configure(0.0, config.replicas, config.batch_sizes, [0.0] * len(options), config.split)
    now = 0.0
    while (moment := policy.next_decision(now)) is not None and moment < end:
        window = pool.advance(moment)
        change = policy.decide(moment, window)
        if change is not None:
            pool.configure(moment, change.replicas, change.batch_sizes, [0.0] * len(options), change.split)
        now = moment
        if progress is not None:
            progress(now / end)
    if progress is not None:
        # the policy looks no more (static never looks): advance in steps only to say how far it got
        while now + PROGRESS_STEP_S < end:
            pool.advance(now + PROGRESS_STEP_S)
            now += PROGRESS_STEP_S
            progress(now / end)
    result = pool.finish(end)
    served = np.asarray(result.served, dtype=np.float64)
    accuracies = [o.accuracy for o in options]
    accuracy = None
    if all(a is not None for a in accuracies) and served.sum() > 0:
        accuracy = float((served * np.asarray(accuracies, dtype=np.float64)).sum() / served.sum())
    replica_hours = result.cost_replica_s / 3600.0
    return Report(
        policy_name,
        end,
        result.requests,
        replica_hours * scenario.price_per_replica_hour,
        replica_hours,
        100.0 * result.violation_rate,
        1000.0 * result.p99_s,
        1000.0 * result.mean_latency_s,
        accuracy,
        result.reconfigurations,
        time.perf_counter() - started,
        dict(policy.settings(), world=scenario.settings()),
    )


def ratios(reports: list[Report], baseline: str) -> dict[str, dict[str, object]]:
    """Per run: its cost and SLO violations divided by the ``baseline`` run's (None where that is 0)."""
    base = next(r for r in reports if r.policy == baseline)

    def divided(value: float, by: float) -> float | None:
        return round(value / by, 6) if by > 0 else None

    return {
        r.policy: {
            "run": baseline,
            "cost": divided(r.cost, base.cost),
            "violations": divided(r.violation_percent, base.violation_percent),
        }
        for r in reports
    }
