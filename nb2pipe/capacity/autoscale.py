"""``nb2pipe autoscale``: the planner ``simulate`` scores, run as a control loop next to the serving system.

Every turn the loop reads the live request rate (a :class:`~nb2pipe.capacity.control.RateSource`),
forecasts the peak of every interval that has begun or whose replicas must start now to be ready
in time (one cold start ahead) with the plan's fitted :class:`OnlineForecaster`, solves each with
the same :class:`Optimizer`, and applies the result (an :class:`~nb2pipe.capacity.control.Actuator`):
per variant the most replicas any of those intervals needs, the split of the interval running now.
This is what ``policies.Planner`` does inside the simulator, including its surge check: when the
rate seen is above the capacity provisioned, the loop provisions for that rate x ``SURGE_HEADROOM``
at once and keeps it for a cold start and two intervals, until the forecasts (which then see the
rate) take over. The simulator's trigger is a growing queue; live, the loop sees only the rate.

:class:`Controller` is the decision step: pure (time and rates in, a Decision out), no I/O, no
clock. :class:`Loop` does the reading, applying, logging and sleeping, with an injected clock.

With a day-ahead plan (``nb2pipe plan --online``: the day-ahead forecast and the online forecaster
fitted on the same days) each interval's load is the larger of the plan's forecast for that time of
day and the online forecast, the surge check above both: the simulator's ``day-ahead+online``.

Safety: the loop starts from what the actuator says runs (after a restart it resumes there) and,
until it has seen a whole forecast window of rates, never goes below it. When the rate is missing
it keeps the last safe floor (never lower, never zero) and says so (``Decision.fallback``).

Interval ``k`` starts at epoch second ``k x interval_s``: the phases of a forecaster fitted with a
period (30 min, 1 h, 1 day) are read as UTC time of day, the trace's second 0 being midnight.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TextIO

import numpy as np

from nb2pipe.capacity.control import SURGE_HEADROOM, Actuator, Decision, RateSource, VariantSetting
from nb2pipe.capacity.forecast import OnlineForecaster
from nb2pipe.capacity.optimize import Allocation, Optimizer
from nb2pipe.capacity.plan import CapacityPlan, PlanError, whole_percents
from nb2pipe.capacity.trace import DAY_S
from nb2pipe.errors import Nb2PipeError

#: seconds between rate readings when the loop is not told otherwise
DEFAULT_STEP_S = 15.0
#: the rate window asked of the source (KEDA's trigger uses the same minute)
DEFAULT_RATE_WINDOW_S = 60.0


@dataclass(frozen=True)
class LoopSettings:
    #: seconds between two turns of the loop at most (it also wakes one cold start before each interval)
    step_s: float = DEFAULT_STEP_S
    #: each reading is the rate over this many seconds
    rate_window_s: float = DEFAULT_RATE_WINDOW_S
    #: a reading older than this is no reading (the rate is missing)
    stale_after_s: float = 2 * DEFAULT_STEP_S

    def check(self) -> None:
        if not self.step_s > 0:
            raise Nb2PipeError(f"the loop's step ({self.step_s:g} s) must be positive")
        if not self.rate_window_s > 0:
            raise Nb2PipeError(f"the rate window ({self.rate_window_s:g} s) must be positive")
        if self.stale_after_s < self.step_s:
            raise Nb2PipeError(
                f"a rate counts as missing after {self.stale_after_s:g} s, less than one step ({self.step_s:g} s)"
            )


def forecaster_of(plan: CapacityPlan) -> OnlineForecaster:
    """The plan's fitted online forecaster; a day-ahead plan made without ``--online`` has none."""
    if plan.online is None:
        method = plan.forecast.get("method", "unknown")
        raise PlanError(
            f"the plan's forecast is {method!r} and holds no fitted online forecaster, which autoscale "
            "forecasts with; make the plan with nb2pipe plan --days A-B (the online planner) -o PLAN.json, or "
            "a day-ahead plan with nb2pipe plan --online (its forecast then is a floor under the online one)"
        )
    if plan.online.interval_s != plan.interval_s:
        raise PlanError(
            f"the plan's forecaster works in {plan.online.interval_s} s intervals, its plan in {plan.interval_s} s"
        )
    return plan.online


def day_ahead_floor(plan: CapacityPlan) -> tuple[float, ...] | None:
    """A day-ahead plan's forecast of every interval of the day, from midnight UTC; None for an
    online plan (its intervals are the days it was made for, not a day to repeat)."""
    if plan.forecast.get("method") != "day-ahead":
        return None
    per_day = DAY_S // plan.interval_s
    if len(plan.intervals) != per_day:
        raise PlanError(
            f"a day-ahead plan holds one day ({per_day} intervals of {plan.interval_s} s); this one has "
            f"{len(plan.intervals)}: make it again with nb2pipe plan --online"
        )
    by_phase = sorted(plan.intervals, key=lambda i: i.start_s % DAY_S)
    return tuple(i.forecast_rps for i in by_phase)


class Controller:
    """The decision step: the recent rates and what runs now -> what should run, and why."""

    def __init__(
        self,
        plan: CapacityPlan,
        settings: LoopSettings | None = None,
        forecaster: OnlineForecaster | None = None,
    ) -> None:
        self.plan = plan
        self.settings = settings or LoopSettings()
        self.settings.check()
        self.forecaster = forecaster or forecaster_of(plan)
        self.day_ahead = day_ahead_floor(plan)
        self.optimizer = Optimizer(plan.options, plan.accuracy_value)
        self.interval_s = plan.interval_s
        self.lead_s = float(plan.cold_start_s)
        #: rate readings (epoch s, requests/s or None), oldest first, as long as the forecast looks back
        self.samples: deque[tuple[float, float | None]] = deque()
        #: the last settings known to be safe: what runs on resume, then every decision taken
        self.floor: tuple[VariantSetting, ...] = self._settings([self.optimizer.best(self.forecaster.floor_rps)])
        self.floor_source = "the plan's smallest allocation"
        self.last_forecast = 0.0
        #: (requests/s, until when) provisioned because the rate outran the plan
        self.boost: tuple[float, float] = (0.0, 0.0)
        #: when the readings of the current unbroken run began, and the latest reading
        self.first_seen: float | None = None
        self.last_seen: float | None = None

    # --- inputs ---------------------------------------------------------------------------

    def resume(self, running: tuple[VariantSetting, ...] | None) -> None:
        """Start from what runs now: it is the floor until a whole forecast window has been seen."""
        if running:
            known = {o.name for o in self.plan.options}
            unknown = sorted(s.variant for s in running if s.variant not in known)
            if unknown:
                raise Nb2PipeError(
                    f"what runs serves variants {', '.join(unknown)} that the plan does not know "
                    f"(it knows {', '.join(sorted(known))}); autoscale it with the plan it was deployed from"
                )
            self.floor = tuple(running)
            self.floor_source = "what runs now"

    def observe(self, at: float, rps: float | None) -> None:
        """One reading of the rate over the ``rate_window_s`` before ``at`` (None: none came)."""
        if rps is not None and not (math.isfinite(rps) and rps >= 0):
            rps = None
        self.samples.append((at, rps))
        if rps is not None:
            # after a gap longer than the forecast window, the window must fill again (warming up)
            if self.last_seen is None or at - self.last_seen > self.forecaster.window_s:
                self.first_seen = at - self.settings.rate_window_s
            self.last_seen = at
        keep = self.forecaster.window_s + self.lead_s + 2 * self.interval_s + self.settings.rate_window_s
        while self.samples and self.samples[0][0] < at - keep:
            self.samples.popleft()

    def seed(self, rates: list[float | None], end: float, step_s: float) -> None:
        """Readings at ``step_s`` spacing ending at ``end`` (RateSource.recent_rates), oldest first."""
        for i, rate in enumerate(rates):
            self.observe(end - (len(rates) - 1 - i) * step_s, rate)

    # --- the decision ---------------------------------------------------------------------

    def decide(self, now: float) -> Decision:
        latest = self._latest(now)
        if latest is None:
            return self._fallback(now)
        interval = self.interval_s
        current = int(now // interval)
        # every interval that has begun, or whose replicas must start now to be ready in time
        last = max(current, int((now + self.lead_s) // interval))
        forecasts = self._forecasts(now, current, last - current + 1)
        reasons = [f"forecast {max(forecasts):.1f} req/s for intervals {current}..{last} of {interval} s"]
        if self.day_ahead is not None:
            per_day = len(self.day_ahead)
            floors = [self.day_ahead[k % per_day] for k in range(current, last + 1)]
            combined = [max(f, d) for f, d in zip(forecasts, floors, strict=True)]
            reasons = [
                f"forecast {max(combined):.1f} req/s for intervals {current}..{last} of {interval} s "
                f"(online {max(forecasts):.1f}, day-ahead floor {max(floors):.1f})"
            ]
            forecasts = combined
        floor_capacity = self._capacity(self.floor)
        boost_rps, until = self.boost
        if latest > floor_capacity:
            boost_rps, until = latest * SURGE_HEADROOM, now + self.lead_s + 2 * interval
            self.boost = (boost_rps, until)
            reasons.append(f"surge: {latest:.1f} req/s over the {floor_capacity:.1f} provisioned")
        elif until > now:
            reasons.append(f"surge boost to {boost_rps:.1f} req/s held {until - now:.0f} s more")
        loads = [max(f, boost_rps) if until > now else f for f in forecasts]
        settings = self._settings([self.optimizer.best(load) for load in loads])
        peak = max(loads)
        warming = self.first_seen is None or now - self.first_seen < self.forecaster.window_s
        if warming:
            settings = _at_least(settings, self.floor)
            seen = self.forecaster.window_s
            reasons.append(f"warming up: under {seen} s of rates seen, not below {self.floor_source}")
        self.floor, self.floor_source, self.last_forecast = settings, "the last decision", peak
        return Decision(now, latest, peak, settings, "; ".join(reasons))

    def _fallback(self, now: float) -> Decision:
        seen = [t for t, rate in self.samples if rate is not None]
        since = f"for {now - seen[-1]:.0f} s" if seen else "yet"
        return Decision(
            now,
            None,
            self.last_forecast,
            self.floor,
            f"no request rate {since}: keeping the last safe floor ({self.floor_source})",
            fallback=True,
        )

    def _latest(self, now: float) -> float | None:
        if not self.samples:
            return None
        at, rate = self.samples[-1]
        return rate if rate is not None and now - at <= self.settings.stale_after_s else None

    def _forecasts(self, now: float, first: int, count: int) -> list[float]:
        """The forecaster's peaks for intervals ``first..first+count-1`` from the readings so far."""
        forecaster = self.forecaster
        # an origin on a whole period keeps the forecaster's phases (interval index mod period)
        unit = max(forecaster.period_s, self.interval_s)
        oldest = self.samples[0][0] - self.settings.rate_window_s
        origin = int(oldest // unit) * unit
        rates = self._per_second(origin, now)
        offset = origin // self.interval_s
        predicted = forecaster.predict(rates, first - offset, count)
        return [float(p) for p in predicted]

    def _per_second(self, origin: int, now: float) -> np.ndarray:
        """Each second from ``origin`` to ``now`` at the rate read for it; a second without a
        reading has the rate read before it (none before any: 0, as the forecaster pads)."""
        size = max(0, int(now) - origin)
        rates = np.full(size, np.nan)
        window = self.settings.rate_window_s
        for at, rate in self.samples:
            if rate is None:
                continue
            begin, end = max(0, int(at - min(window, self.settings.step_s)) - origin), min(size, int(at) - origin)
            if end > begin:
                rates[begin:end] = rate
        known = np.where(np.isnan(rates), 0, np.arange(size))
        np.maximum.accumulate(known, out=known)
        filled = rates[known] if size else rates
        return np.nan_to_num(filled, nan=0.0)

    def _capacity(self, settings: tuple[VariantSetting, ...]) -> float:
        rates = {o.name: o.rate_per_replica for o in self.plan.options}
        return sum(s.replicas * rates.get(s.variant, 0.0) for s in settings)

    def _settings(self, allocations: list[Allocation]) -> tuple[VariantSetting, ...]:
        """Per variant the most replicas of ``allocations``; the split of the first (running now)."""
        running = allocations[0]
        options = self.plan.options
        shares = [next((s.traffic for s in running.shares if s.variant == o.name), 0.0) for o in options]
        percents = whole_percents(shares)
        envelope = {s.variant: s.max_replicas for s in self.plan.serving}
        result = []
        for option, percent in zip(options, percents, strict=True):
            replicas = max(a.replicas_of(option.name) for a in allocations)
            slack_ms = max(0.0, self.plan.slo_ms - option.service_p99_s * 1000.0)
            result.append(
                VariantSetting(
                    option.name,
                    replicas,
                    max(replicas, envelope.get(option.name, 0), 1),
                    option.batch_size,
                    max(1, math.floor(slack_ms / 2)),
                    percent,
                )
            )
        return tuple(result)

    def next_turn(self, now: float) -> float:
        """When to look next: after a step, or earlier at an interval's start or one cold start before it."""
        interval = self.interval_s
        candidates = [now + self.settings.step_s]
        for k in range(int(now // interval) + 1, int((now + self.settings.step_s + self.lead_s) // interval) + 2):
            for at in (k * interval, k * interval - self.lead_s):
                if at > now:
                    candidates.append(at)
        return min(candidates)


def _at_least(settings: tuple[VariantSetting, ...], floor: tuple[VariantSetting, ...]) -> tuple[VariantSetting, ...]:
    lower = {s.variant: s for s in floor}
    raised = []
    for s in settings:
        kept = lower.get(s.variant)
        if kept is not None and kept.replicas > s.replicas:
            s = VariantSetting(
                s.variant, kept.replicas, max(s.max_replicas, kept.replicas), s.batch_size, s.max_latency_ms, s.percent
            )
        raised.append(s)
    return tuple(raised)


# --- the loop ---------------------------------------------------------------------------------


@dataclass
class Loop:
    """Reads, decides, applies, logs, sleeps. ``clock``/``sleep`` are injected so tests run at once."""

    controller: Controller
    source: RateSource
    actuator: Actuator
    clock: Callable[[], float]
    sleep: Callable[[float], object]
    log: Callable[[Decision], None]
    dry_run: bool = False

    def start(self) -> None:
        """Resume from what runs, and feed the forecaster the rates of its window."""
        controller = self.controller
        controller.resume(self.actuator.current())
        step = controller.settings.step_s
        seconds = controller.forecaster.window_s + controller.lead_s
        now = self.clock()
        rates = self.source.recent_rates(seconds, step)
        controller.seed(rates, now, step)

    def turn(self) -> Decision:
        controller = self.controller
        now = self.clock()
        controller.observe(now, self.source.request_rate(controller.settings.rate_window_s))
        decision = controller.decide(now)
        cause = getattr(self.source, "last_error", None)
        if decision.fallback and cause:
            decision = replace(decision, reason=f"{decision.reason}; {cause}")
        if not self.dry_run:
            self.actuator.apply(decision)
        self.log(decision)
        return decision

    def run(self, turns: int | None = None, until: Callable[[], bool] | None = None) -> int:
        """Start, then :meth:`go_on`; returns how many decisions were taken."""
        self.start()
        return self.go_on(turns, until)

    def go_on(self, turns: int | None = None, until: Callable[[], bool] | None = None) -> int:
        """Turn after turn: ``turns`` of them, or until ``until()`` is true (asked before each turn;
        with ``sleep=event.wait`` setting the event ends the sleep too), or for ever when neither."""
        taken = 0
        while (turns is None or taken < turns) and not (until is not None and until()):
            self.turn()
            taken += 1
            if turns is not None and taken >= turns:
                break
            now = self.clock()
            # bounded: never longer than one step, never negative
            self.sleep(min(max(0.0, self.controller.next_turn(now) - now), self.controller.settings.step_s))
        return taken


def decision_logger(*streams: TextIO) -> Callable[[Decision], None]:
    """Each decision as one JSON line on every stream, flushed (a tail -f sees it at once)."""

    def log(decision: Decision) -> None:
        line = json.dumps(decision.to_json(), sort_keys=True)
        for stream in streams:
            stream.write(line + "\n")
            stream.flush()

    return log
