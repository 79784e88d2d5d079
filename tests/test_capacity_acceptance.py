"""Issue 7's acceptance on the real trace: days 8-14, everything fitted on days 1-7, at the
trace's own rate, with the variants profiled from real served models (tests/data/).

The week at x10 is bench/planner.py's (minutes of simulation); this is the same comparison
at x1, every policy over the whole week.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nb2pipe.capacity.profile import read_profile
from nb2pipe.capacity.scenario import Choices, fitted_forecaster, scenario_for
from nb2pipe.capacity.simulate import Report, simulate
from nb2pipe.capacity.trace import DaySpan, read_trace

pytestmark = pytest.mark.slow  # simulates a week of the trace under three policies

ROOT = Path(__file__).resolve().parents[1]
TRACE = ROOT.parent / "shared" / "data" / "twitter-trace-days01-14.txt"
PROFILE = ROOT / "tests" / "data" / "digits_forests.profile.json"
SLO_MS = 150.0


@pytest.fixture(scope="module")
def week() -> dict[str, Report]:
    choices = Choices(slo_ms=SLO_MS, days=DaySpan(8, 14), fit_days=DaySpan(1, 7), cold_start_s=30.0)
    scenario = scenario_for(read_profile(PROFILE), read_trace(TRACE), choices, str(TRACE))
    forecaster, _, _ = fitted_forecaster(scenario, choices.violation_target)
    return {name: simulate(scenario, name, forecaster) for name in ("reactive", "planner", "oracle")}


def test_the_planner_costs_at_most_six_tenths_of_the_reactive_baseline(week: dict[str, Report]) -> None:
    assert week["planner"].cost <= 0.6 * week["reactive"].cost


def test_the_planner_keeps_violations_under_one_percent_and_under_the_baseline(week: dict[str, Report]) -> None:
    assert week["planner"].violation_percent <= 1.0
    assert week["planner"].violation_percent <= week["reactive"].violation_percent


def test_the_planner_costs_at_most_a_fifth_more_than_the_oracle(week: dict[str, Report]) -> None:
    assert week["planner"].cost <= 1.2 * week["oracle"].cost


def test_every_policy_serves_every_request_of_the_week(week: dict[str, Report]) -> None:
    counts = {r.requests for r in week.values()}
    assert len(counts) == 1  # one seed: the same arrivals whatever the policy
    # a Poisson process at the trace's rates: its count is within a few standard deviations
    expected = float(read_trace(TRACE)[7 * 86_400 : 14 * 86_400].sum())
    assert abs(counts.pop() - expected) < 6 * expected**0.5
