"""Day-ahead plans that hold their SLO (issue 21, item 4): the day-ahead forecast as a floor, the
online forecast and the surge check correcting within the day.

A small synthetic world: three days of the same daily wave, the last with two hours at twice the
load that no earlier day had. The day-ahead forecast cannot know of them; the online loop sees them.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from nb2pipe.capacity.forecast import OnlineForecaster
from nb2pipe.capacity.optimize import Optimizer
from nb2pipe.capacity.plan_policies import DayAhead, DayAheadOnline, MedianDayOnline, Planner, day_ahead_forecasts
from nb2pipe.capacity.planning import plan_from_trace
from nb2pipe.capacity.policies import POLICIES
from nb2pipe.capacity.policy_base import Setup
from nb2pipe.capacity.scenario import Choices, scenario_for
from nb2pipe.capacity.simulate import Scenario, simulate
from nb2pipe.capacity.trace import DAY_S, DaySpan
from tests.support.capacity_profiles import synthetic_profile

SLO_MS = 100.0
TARGET_PERCENT = 1.0
SURGE = slice(12 * 3600, 14 * 3600)  # of the last day


@pytest.fixture(scope="module")
def rates() -> np.ndarray:
    seconds = np.arange(3 * DAY_S)
    wave = np.round(1000 + 600 * np.sin(2 * np.pi * seconds / DAY_S))
    last = wave[2 * DAY_S :]
    last[SURGE] *= 2  # an afternoon no earlier day had
    return wave


@pytest.fixture(scope="module")
def scenario(rates: np.ndarray) -> Scenario:
    choices = Choices(slo_ms=SLO_MS, days=DaySpan(3, 3), fit_days=DaySpan(1, 2))
    return scenario_for(synthetic_profile(), rates, choices, "three-days.txt")


@pytest.fixture(scope="module")
def online() -> OnlineForecaster:
    """The last 30 s peak x 1.2, decided one cold start (30 s) ahead."""
    return OnlineForecaster(interval_s=30, lead_s=30, window_s=30, period_s=0, headroom=(1.2,))


def setup_of(scenario: Scenario, forecaster: OnlineForecaster | None = None) -> Setup:
    return Setup(
        scenario.rates,
        scenario.history,
        scenario.options,
        scenario.baseline,
        scenario.cold_start_s,
        scenario.interval_s,
        Optimizer(scenario.options, scenario.accuracy_value),
        forecaster,
        start_s=scenario.start_s,
    )


def test_both_are_registered_and_only_the_online_one_needs_a_forecaster() -> None:
    assert POLICIES["day-ahead"] is DayAhead and POLICIES["day-ahead+online"] is DayAheadOnline
    assert DayAheadOnline.needs_forecaster and Planner.needs_forecaster
    assert not DayAhead.needs_forecaster
    assert POLICIES["day-ahead-median+online"] is MedianDayOnline and MedianDayOnline.needs_forecaster


def test_the_median_floor_is_lower_and_still_held_up_by_the_online_loop(
    scenario: Scenario, online: OnlineForecaster
) -> None:
    median = MedianDayOnline(setup_of(scenario, online))
    assert np.all(day_ahead_forecasts(setup_of(scenario), 0.5)[0] <= day_ahead_forecasts(setup_of(scenario))[0])
    assert np.all(median.forecasts() <= DayAheadOnline(setup_of(scenario, online)).forecasts())
    assert simulate(scenario, "day-ahead-median+online", online).violation_percent <= TARGET_PERCENT


def test_the_day_ahead_policy_forecasts_what_nb2pipe_plan_plans(rates: np.ndarray, scenario: Scenario) -> None:
    plan = plan_from_trace(synthetic_profile(), rates[: 3 * DAY_S], Choices(slo_ms=SLO_MS, fit_days=DaySpan(1, 2)))
    forecasts, fitted = day_ahead_forecasts(setup_of(scenario))
    assert [i.start_s for i in plan.intervals][:1] == [2 * DAY_S] and len(fitted) == 1
    assert np.allclose(forecasts, [i.forecast_rps for i in plan.intervals], atol=1e-3)


def test_the_online_forecast_only_ever_raises_the_day_ahead_floor(scenario: Scenario, online: OnlineForecaster) -> None:
    floor = DayAhead(setup_of(scenario)).forecasts()
    both = DayAheadOnline(setup_of(scenario, online))
    combined = both.forecasts()
    assert np.all(combined >= floor)
    surge = slice(SURGE.start // scenario.interval_s + 2, SURGE.stop // scenario.interval_s)
    # during the surge the online forecast, not the floor, sets the capacity
    assert np.all(combined[surge] > floor[surge])
    assert both.settings()["forecast"]["floor"]["method"] == "day-ahead"  # type: ignore[index]


def test_the_online_loop_holds_the_slo_where_the_day_ahead_plan_alone_does_not(
    scenario: Scenario, online: OnlineForecaster
) -> None:
    alone = simulate(scenario, "day-ahead")
    corrected = simulate(scenario, "day-ahead+online", online)
    assert alone.violation_percent > TARGET_PERCENT
    assert corrected.violation_percent <= TARGET_PERCENT


def test_day_ahead_without_a_surge_costs_no_more_than_its_plan(scenario: Scenario, online: OnlineForecaster) -> None:
    calm = replace(scenario, rates=scenario.history[:DAY_S].copy())  # day 3 without its surge
    alone = simulate(calm, "day-ahead")
    corrected = simulate(calm, "day-ahead+online", online)
    assert alone.violation_percent <= TARGET_PERCENT
    assert corrected.replica_hours <= 1.05 * alone.replica_hours
