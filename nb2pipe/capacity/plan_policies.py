"""Policies that follow a schedule of allocations, one per interval, each provisioned one cold start
ahead: ``planner`` (the online forecast), ``oracle`` (the true peaks), ``plan`` (a plan file's),
``day-ahead`` (each day's day-ahead forecast, fitted on the days before it) and ``day-ahead+online``
(that forecast as a floor under the online one, with the planner's surge check: what ``nb2pipe
autoscale`` runs with a plan from ``nb2pipe plan --online``), and ``day-ahead-median+online`` (the
same over the median of the earlier days)."""

from __future__ import annotations

import math

import numpy as np

from nb2pipe.capacity.control import CHECK_S, SURGE_HEADROOM, TRIGGER_S
from nb2pipe.capacity.engine import WindowStats
from nb2pipe.capacity.forecast import DayAheadForecaster, fit_day_ahead
from nb2pipe.capacity.optimize import Allocation
from nb2pipe.capacity.plan import PlanError
from nb2pipe.capacity.policy_base import Config, Policy, Setup, days_text, plan_span
from nb2pipe.capacity.trace import DAY_S, interval_peaks
from nb2pipe.errors import Nb2PipeError


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
    needs_forecaster = True

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
            raise Nb2PipeError(f"the {self.name} policy needs a fitted online forecaster")
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


def day_ahead_forecasts(setup: Setup, coverage: float = 0.99) -> tuple[np.ndarray, list[DayAheadForecaster]]:
    """Each simulated day's interval forecasts as ``nb2pipe plan`` makes them the night before: fitted
    on the history and the simulated days before it (``coverage``: the quantile of the earlier days taken,
    ``nb2pipe plan``'s is 0.99); and each day's forecaster."""
    interval = setup.interval_s
    if setup.history.size % DAY_S:
        raise Nb2PipeError("a day-ahead forecast needs a history of whole days")
    days = -(-setup.rates.size // DAY_S)
    fitted = [
        fit_day_ahead(np.concatenate([setup.history, setup.rates[: day * DAY_S]]), interval, coverage)
        for day in range(days)
    ]
    forecasts = np.concatenate([f.predict_day() for f in fitted])
    return forecasts[: -(-setup.rates.size // interval)], fitted


def _day_ahead_settings(fitted: list[DayAheadForecaster]) -> dict[str, object]:
    first = fitted[0].describe()
    return dict(first, headroom=[round(f.headroom, 3) for f in fitted], fitted_per_day=True)


class DayAhead(_Scheduled):
    name = "day-ahead"
    summary = "each day's day-ahead plan (nb2pipe plan without --days), fitted on the days before it, replayed"

    def forecasts(self) -> np.ndarray:
        forecasts, self.fitted = day_ahead_forecasts(self.setup)
        return forecasts

    def settings(self) -> dict[str, object]:
        return dict(super().settings(), forecast=_day_ahead_settings(self.fitted))


class DayAheadOnline(Planner):
    name = "day-ahead+online"
    summary = (
        "the day-ahead plan as a floor, the online forecast above it and the planner's surge check: "
        "what nb2pipe autoscale runs with a day-ahead plan made with nb2pipe plan --online"
    )

    #: the day-ahead quantile under the online forecast: the plan's own (0.99) by default
    floor_coverage = 0.99

    def forecasts(self) -> np.ndarray:
        floor, self.fitted = day_ahead_forecasts(self.setup, self.floor_coverage)
        return np.maximum(floor, super().forecasts())

    def settings(self) -> dict[str, object]:
        found = super().settings()
        found["forecast"] = {"floor": _day_ahead_settings(self.fitted), "online": found["forecast"]}
        return found


class MedianDayOnline(DayAheadOnline):
    name = "day-ahead-median+online"
    summary = (
        "day-ahead+online with the median of the earlier days as the floor (not their 99 % quantile): "
        "the online forecast and surge check cover the rest"
    )
    floor_coverage = 0.5
