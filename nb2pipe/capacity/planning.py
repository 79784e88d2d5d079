"""A capacity plan from a profile and a trace: forecast, then the exact search per interval."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nb2pipe.capacity.forecast import OnlineForecaster, fit_day_ahead
from nb2pipe.capacity.model import options_for
from nb2pipe.capacity.optimize import Optimizer
from nb2pipe.capacity.plan import CapacityPlan, build_plan
from nb2pipe.capacity.profile import Profile
from nb2pipe.capacity.scenario import (
    HOLDOUT_DAYS,
    Choices,
    check_plannable,
    fitted_forecaster,
    history_scenario,
    prepared_profile,
    scenario_for,
    spans,
)
from nb2pipe.capacity.trace import DAY_S, DaySpan, TraceError, select_days
from nb2pipe.errors import Nb2PipeError


def plan_from_trace(
    profile: Profile,
    rates: np.ndarray,
    choices: Choices,
    source: str = "the trace",
    online: bool = False,
    progress: Callable[[float], None] | None = None,
) -> CapacityPlan:
    """With ``choices.days``: those days as the online planner sees them. Without: the day
    after the history (every whole day of the trace, or ``choices.fit_days``), and with
    ``online`` the online forecaster fitted on the same history as well, so that ``nb2pipe
    autoscale`` can run the day-ahead forecast as a floor under it. ``progress`` hears the
    share of the online forecaster's trials run."""
    choices.check()
    if DAY_S % choices.interval_s:
        raise Nb2PipeError(f"--interval-s {choices.interval_s} must divide a day (86400 s)")
    prepared = prepared_profile(profile, choices)
    optimizer = Optimizer(options_for(prepared, choices.slo_ms), choices.accuracy_value)
    if choices.days is not None:
        # the profile already has its SLO rates: the scenario does not measure them again
        scenario = scenario_for(prepared, rates, choices, source)
        forecaster, _, _ = fitted_forecaster(scenario, choices.violation_target, progress=progress)
        observed = np.concatenate([scenario.history, scenario.rates])
        forecasts = forecaster.predict(
            observed, scenario.history.size // choices.interval_s, scenario.rates.size // choices.interval_s
        )
        fit, days = spans(rates, choices, source)
        start = days.seconds()[0]
        description = dict(forecaster.describe(), fit_days=str(fit), days=str(days))
        online_forecaster: OnlineForecaster | None = forecaster  # what nb2pipe autoscale forecasts with
    else:
        if rates.size < DAY_S:
            raise TraceError(f"{source} holds {rates.size:,} s, less than one day ({DAY_S:,} s, one rate per second)")
        fit = choices.fit_days or DaySpan(1, rates.size // DAY_S)
        # the busiest second named by its line, rather than the search's refusal of a forecast later
        check_plannable(select_days(rates, fit, source), fit, choices, optimizer.options, source)
        history = select_days(rates, fit, source) * choices.scale
        day_ahead = fit_day_ahead(history, choices.interval_s)
        forecasts = day_ahead.predict_day()
        start = fit.last * DAY_S
        description = dict(day_ahead.describe(), fit_days=str(fit), day=fit.last + 1)
        online_forecaster = None
        days_fitted = fit.last - fit.first + 1
        if online:
            if days_fitted < HOLDOUT_DAYS + 1:
                raise Nb2PipeError(
                    f"--online chooses the online forecast on the last {HOLDOUT_DAYS} fit days and fits it on the "
                    f"days before: it needs at least {HOLDOUT_DAYS + 1} fit days (days {fit} are {days_fitted}; "
                    "give --fit-days)"
                )
            scenario = history_scenario(prepared, history, choices, (fit.first - 1) * DAY_S)
            online_forecaster = fitted_forecaster(scenario, choices.violation_target, progress=progress)[0]
            description["online"] = online_forecaster.describe()
    description["scale"] = choices.scale
    return build_plan(
        [float(f) for f in forecasts],
        start,
        optimizer,
        slo_ms=choices.slo_ms,
        interval_s=choices.interval_s,
        cold_start_s=choices.cold_start_s,
        price_per_replica_hour=choices.price_per_replica_hour,
        forecast=description,
        online=online_forecaster,
    )
