"""Scaling policies the simulator compares: small classes behind a registry.

Each policy starts the pool with a configuration and may change it at the times it asks
for. ``static`` and ``reactive`` run one fixed serving configuration (the baseline: one
variant at one batch size, as a plain deployment does); ``reactive-batched`` the same variant at
the batch size the planner's search gives it; ``deployed`` what ``deploy --plan`` deploys from a
plan. The scheduled ones (``planner``, ``oracle``, ``plan``, ``day-ahead``, ``day-ahead+online``)
are in :mod:`nb2pipe.capacity.plan_policies`. Each says what it ran with (:meth:`Policy.settings`),
for the report.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import asdict, replace

from nb2pipe.capacity.engine import WindowStats
from nb2pipe.capacity.plan import PlanError
from nb2pipe.capacity.plan_policies import (
    CHECK_S,
    SURGE_HEADROOM,
    TRIGGER_S,
    DayAhead,
    DayAheadOnline,
    MedianDayOnline,
    Oracle,
    Planner,
    PlanReplay,
)
from nb2pipe.capacity.policy_base import Config, Policy, Reactive, Setup, Stabilizer, days_text, plan_span
from nb2pipe.errors import Nb2PipeError

__all__ = [
    "CHECK_S",
    "POLICIES",
    "SURGE_HEADROOM",
    "TRIGGER_S",
    "Config",
    "Policy",
    "Reactive",
    "Setup",
    "days_text",
    "plan_span",
    "policy_named",
]


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


class ReactiveHPA(Policy):
    name = "reactive"
    summary = (
        "HPA-like: every 15 s, replicas = ceil(current x metric / target), 10 % tolerance, 5 min scale-down window"
    )

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        self.knobs = setup.reactive
        self.scaler = Stabilizer(self.knobs, self.knobs.min_replicas, self.knobs.max_replicas)

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
            i: Stabilizer(self.knobs, e.min_replicas, max(e.max_replicas, 1)) for i, e in self.entries.items()
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


POLICIES: dict[str, type[Policy]] = {
    p.name: p
    for p in (
        StaticPeak,
        ReactiveHPA,
        ReactiveBatched,
        Planner,
        Oracle,
        PlanReplay,
        DeployedPlan,
        DayAhead,
        DayAheadOnline,
        MedianDayOnline,
    )
}


def policy_named(name: str) -> type[Policy]:
    found = POLICIES.get(name)
    if found is None:
        close = difflib.get_close_matches(name, POLICIES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise Nb2PipeError(f"no policy named {name!r}{hint} (policies: {', '.join(POLICIES)})")
    return found
