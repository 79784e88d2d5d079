"""Putting a simulation or plan together from a profile, a trace and the user's choices."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from nb2pipe.capacity.forecast import Candidate, OnlineForecaster, fit_online, refit, shortlist
from nb2pipe.capacity.model import VariantOption, options_for, rated
from nb2pipe.capacity.optimize import Optimizer
from nb2pipe.capacity.plan import CapacityPlan
from nb2pipe.capacity.policies import Reactive, plan_span
from nb2pipe.capacity.profile import Profile, ProfileError
from nb2pipe.capacity.simulate import Scenario
from nb2pipe.capacity.trace import DAY_S, DaySpan, TraceError, busiest_second, select_days
from nb2pipe.errors import Nb2PipeError

HOLDOUT_DAYS = 2


@dataclass(frozen=True)
class Choices:
    slo_ms: float
    days: DaySpan | None = None
    fit_days: DaySpan | None = None
    scale: float = 1.0
    cold_start_s: float = 30.0
    interval_s: int = 30
    price_per_replica_hour: float = 1.0
    accuracy_value: float = 1.0
    variants: tuple[str, ...] = ()
    baseline_variant: str | None = None
    baseline_batch: int = 1
    #: the planner's forecast is the cheapest whose simulated SLO violations on the
    #: history's last two days stay at or under this share (0.008: 0.8 %, inside p99 <= SLO)
    violation_target: float = 0.008
    seed: int = 0
    reactive: Reactive = field(default_factory=Reactive)

    def check(self) -> None:
        if self.slo_ms <= 0:
            raise Nb2PipeError(f"--slo-ms {self.slo_ms:g}: the latency SLO must be positive")
        if self.scale <= 0:
            raise Nb2PipeError(f"--scale {self.scale:g}: the rate multiplier must be positive")
        if self.cold_start_s < 0:
            raise Nb2PipeError(f"--cold-start-s {self.cold_start_s:g} cannot be negative")
        if self.interval_s < 1:
            raise Nb2PipeError(f"--interval-s {self.interval_s}: an interval lasts at least 1 s")
        if self.price_per_replica_hour <= 0:
            raise Nb2PipeError("--price-per-replica-hour must be positive")
        if not 0 < self.violation_target < 1:
            raise Nb2PipeError(f"--violation-target {100 * self.violation_target:g} % must be between 0 and 100")
        if self.accuracy_value < 0:
            raise Nb2PipeError("--accuracy-value cannot be negative")


def spans(
    rates: np.ndarray, choices: Choices, source: str, plan: CapacityPlan | None = None
) -> tuple[DaySpan, DaySpan]:
    """(fit days, simulated days): by default every day but the last is history (or, with a
    plan to replay, the plan's days)."""
    whole = rates.size // DAY_S
    if whole < 1:
        raise TraceError(f"{source} holds {rates.size:,} s, less than one day ({DAY_S:,} s, one rate per second)")
    days = choices.days
    if days is None and plan is not None:
        first_s, end_s = plan_span(plan)
        days = DaySpan(first_s // DAY_S + 1, -(-end_s // DAY_S))
        if days.last > whole:
            raise TraceError(
                f"the plan is for days {days}, and {source} has {whole} whole days: replay it on a trace that "
                f"holds them, or make the plan from fewer days (a day-ahead plan of --fit-days 1-{whole - 1} "
                f"is for day {whole})"
            )
    if days is None and choices.fit_days is None and whole < 2:
        raise TraceError(f"{source} holds one day: give --days to simulate and --fit-days to learn from")
    if days is None:
        days = DaySpan(choices.fit_days.last + 1, whole) if choices.fit_days else DaySpan(whole, whole)
    fit = choices.fit_days or (DaySpan(1, days.first - 1) if days.first > 1 else None)
    if fit is None:
        raise TraceError(f"days {days} leave no earlier day to fit on; give --fit-days")
    if fit.last >= days.first:
        raise TraceError(f"--fit-days {fit} must end before --days {days} (a forecast learns only from the past)")
    return fit, days


def prepared_profile(profile: Profile, choices: Choices) -> Profile:
    """The chosen variants, with their rates under the SLO."""
    return rated(profile.select(list(choices.variants)), choices.slo_ms)


def baseline_option(profile: Profile, choices: Choices) -> VariantOption:
    """The one configuration static and reactive run: the most accurate variant (or the
    named one) at ``baseline_batch`` — no batching by default, as KServe deploys a model."""
    if choices.baseline_variant:
        variant = profile.variant(choices.baseline_variant)
    else:
        variant = max(profile.variants, key=lambda v: v.accuracy if v.accuracy is not None else -1.0)
    batch = variant.batch(choices.baseline_batch) if choices.baseline_batch in variant.batch_sizes else None
    if batch is None:
        raise ProfileError(
            f"--baseline-batch {choices.baseline_batch}: variant {variant.name!r} was measured at batch sizes "
            f"{', '.join(map(str, variant.batch_sizes))}"
        )
    if not batch.max_rate_under_slo:
        raise ProfileError(
            f"variant {variant.name!r} at batch size {batch.batch_size} cannot meet a p99 of {choices.slo_ms:g} ms"
        )
    return VariantOption(
        variant.name,
        variant.accuracy,
        batch.batch_size,
        batch.max_rate_under_slo,
        batch.service_ms[99] / 1000.0,
        variant.model_uri,
    )


def scenario_for(
    profile: Profile,
    rates: np.ndarray,
    choices: Choices,
    source: str = "the trace",
    plan: CapacityPlan | None = None,
) -> Scenario:
    choices.check()
    fit, days = spans(rates, choices, source, plan)
    scenario = _scenario(
        select_days(rates, days, source) * choices.scale,
        select_days(rates, fit, source) * choices.scale,
        profile,
        choices,
        plan,
        days.seconds()[0],
    )
    for span in (fit, days):
        check_plannable(select_days(rates, span, source), span, choices, scenario.options, source)
    return scenario


def _scenario(
    rates: np.ndarray,
    history: np.ndarray,
    profile: Profile,
    choices: Choices,
    plan: CapacityPlan | None,
    start_s: int,
) -> Scenario:
    """The scenario of these (scaled) rates and history in the world ``choices`` describe."""
    profile = prepared_profile(profile, choices)
    return Scenario(
        rates,
        history,
        profile,
        options_for(profile, choices.slo_ms),
        baseline_option(profile, choices),
        choices.slo_ms,
        choices.cold_start_s,
        choices.interval_s,
        choices.price_per_replica_hour,
        choices.accuracy_value,
        choices.seed,
        replace(choices.reactive),
        plan,
        start_s,
    )


def check_plannable(
    rates: np.ndarray, span: DaySpan, choices: Choices, options: tuple[VariantOption, ...], source: str
) -> None:
    """The busiest second of ``span`` (scaled) must be one the search can serve: an error that names
    its line, rather than the search's own refusal (which no forecast could name) later on."""
    line, rate = busiest_second(rates, span.seconds()[0] + 1)
    scaled = rate * choices.scale
    try:
        Optimizer(options, choices.accuracy_value).best(scaled)
    except Nb2PipeError as exc:
        times = f" x --scale {choices.scale:g} = {scaled:,.6g}" if choices.scale != 1 else ""
        raise TraceError(
            f"{source} line {line:,} (day {(line - 1) // DAY_S + 1}): {rate:,.6g} "
            f"requests/s{times} cannot be planned ({exc}); check that line, or lower --scale"
        ) from None


@dataclass(frozen=True)
class Trial:
    """One shortlisted forecaster simulated on the history's held-out days."""

    candidate: Candidate
    cost: float
    violation_percent: float


def history_scenario(profile: Profile, history: np.ndarray, choices: Choices, start_s: int) -> Scenario:
    """A scenario of ``history`` alone (scaled rates from second ``start_s`` of the trace, its last
    day standing as the simulated one): what the online forecaster of a day-ahead plan is fitted on
    (:func:`fitted_forecaster` reads only the history)."""
    return _scenario(history[-DAY_S:], history, profile, choices, None, start_s + history.size - DAY_S)


def fitted_forecaster(
    scenario: Scenario,
    violation_target: float,
    holdout_days: int = HOLDOUT_DAYS,
    progress: Callable[[float], None] | None = None,
) -> tuple[OnlineForecaster, list[Candidate], list[Trial]]:
    """Fit the planner's forecaster on the scenario's history only.

    Every candidate is scored on the history's last ``holdout_days`` days (fitted on the days
    before); the :func:`~nb2pipe.capacity.forecast.shortlist` (one per statistic and quantile) is
    run as the planner through the simulator on those held-out days, and the cheapest whose
    SLO violations stay within ``violation_target`` wins (else the one with the fewest),
    refitted on all the history. ``progress`` (if given) hears the share of the trials run.
    """
    from nb2pipe.capacity.simulate import simulate

    history, interval = scenario.history, scenario.interval_s
    if history.size % interval or DAY_S % interval:
        raise Nb2PipeError(f"--interval-s {interval} must divide a day (86400 s)")
    lead = math.ceil(scenario.cold_start_s)
    _, candidates = fit_online(history, interval, lead, holdout_days=holdout_days)
    split = (history.size // DAY_S - holdout_days) * DAY_S
    earlier, held = history[:split], history[split:]
    trials = []
    chosen = shortlist(candidates)
    for candidate in chosen:
        trial = replace(scenario, rates=held, history=earlier)
        report = simulate(trial, "planner", refit(earlier, interval, lead, candidate))
        trials.append(Trial(candidate, report.cost, report.violation_percent))
        if progress is not None:
            progress(len(trials) / len(chosen))
    within = [t for t in trials if t.violation_percent <= 100 * violation_target]
    best = min(within, key=lambda t: t.cost) if within else min(trials, key=lambda t: (t.violation_percent, t.cost))
    ordered = sorted(trials, key=lambda t: t.cost)
    return refit(history, interval, lead, best.candidate), candidates, ordered
