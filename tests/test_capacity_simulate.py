"""``simulate`` as a library (issue 21, item 3): a plan replayed as a policy, every run named and
its settings recorded, ratios against a named run, and progress that changes no figure.

A small synthetic world (two days, the synthetic two-variant profile) keeps each run under a second.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from nb2pipe.capacity.optimize import Optimizer
from nb2pipe.capacity.plan import CapacityPlan, PlanError, build_plan
from nb2pipe.capacity.policies import POLICIES
from nb2pipe.capacity.scenario import Choices, scenario_for
from nb2pipe.capacity.simulate import Report, Scenario, ratios, simulate
from nb2pipe.capacity.trace import DAY_S, DaySpan, interval_peaks
from nb2pipe.errors import Nb2PipeError
from tests.support.capacity_profiles import synthetic_profile

SLO_MS = 100.0


@pytest.fixture(scope="module")
def rates() -> np.ndarray:
    """Two days: a daily wave between 20 and 180 requests/s, bursts every half hour."""
    seconds = np.arange(2 * DAY_S)
    wave = 100 + 80 * np.sin(2 * np.pi * seconds / DAY_S)
    bursts = np.where(seconds % 1800 < 60, 2.0, 1.0)
    return np.round(wave * bursts)


@pytest.fixture(scope="module")
def scenario(rates: np.ndarray) -> Scenario:
    choices = Choices(slo_ms=SLO_MS, days=DaySpan(2, 2), fit_days=DaySpan(1, 1))
    return scenario_for(synthetic_profile(), rates, choices, "two-days.txt")


def plan_of(scenario: Scenario, forecasts: np.ndarray, start_s: int) -> CapacityPlan:
    return build_plan(
        [float(f) for f in forecasts],
        start_s,
        Optimizer(scenario.options, scenario.accuracy_value),
        slo_ms=scenario.slo_ms,
        interval_s=scenario.interval_s,
        cold_start_s=scenario.cold_start_s,
        price_per_replica_hour=scenario.price_per_replica_hour,
        forecast={"method": "test: the true peaks", "scale": 1.0},
    )


def figures(report: Report) -> tuple[object, ...]:
    return (
        report.requests,
        report.cost,
        report.violation_percent,
        report.p99_ms,
        report.mean_accuracy,
        report.reconfigurations,
    )


def test_a_plan_of_the_true_peaks_replays_exactly_as_the_oracle(scenario: Scenario) -> None:
    plan = plan_of(scenario, interval_peaks(scenario.rates, scenario.interval_s), DAY_S)
    replayed = simulate(replace(scenario, plan=plan), "plan")
    oracle = simulate(scenario, "oracle")
    assert figures(replayed) == figures(oracle)
    assert replayed.policy == "plan"
    assert replayed.settings["plan_replica_hours"] == round(plan.replica_hours, 3)
    assert replayed.settings["plan_accuracy"] is not None
    assert replayed.settings["forecast"] == {"method": "test: the true peaks", "scale": 1.0}


def test_the_deployed_plan_runs_its_fixed_split_within_its_bounds(scenario: Scenario) -> None:
    from nb2pipe.capacity.deployment import deployed_split

    plan = plan_of(scenario, interval_peaks(scenario.rates, scenario.interval_s), DAY_S)
    split, entries = deployed_split(plan)
    deployed = simulate(replace(scenario, plan=plan), "deployed")
    assert deployed.settings["split"] == dict(split.percents)
    assert sum(deployed.settings["split"].values()) == 100
    assert [e["variant"] for e in deployed.settings["kserve"]] == [e.variant for e in entries]
    # a fixed split serves its own accuracy, whatever the schedule would have served
    assert deployed.mean_accuracy == pytest.approx(split.expected_accuracy, abs=2e-3)
    # never more than maxReplicas of every variant, all day
    most = sum(e.max_replicas for e in entries)
    assert deployed.replica_hours <= most * 24 + 1e-6
    assert deployed.settings["autoscaler"]["metric"] == "rps"
    assert "min_replicas" not in deployed.settings["autoscaler"]


def test_a_plan_that_does_not_cover_the_simulated_day_is_refused(scenario: Scenario) -> None:
    plan = plan_of(scenario, interval_peaks(scenario.rates, scenario.interval_s), 0)  # day 1's seconds
    with pytest.raises(PlanError, match=r"the plan covers seconds 0-86,400 of the trace \(day 1\).*second 86,400"):
        simulate(replace(scenario, plan=plan), "plan")


def test_a_plan_for_another_variant_is_refused(scenario: Scenario) -> None:
    only_small = replace(scenario, options=tuple(o for o in scenario.options if o.name == "small"))
    plan = plan_of(only_small, interval_peaks(scenario.rates, scenario.interval_s), DAY_S)
    large_only = replace(scenario, options=tuple(o for o in scenario.options if o.name == "large"), plan=plan)
    with pytest.raises(PlanError, match="the plan serves small, which the simulation does not have"):
        simulate(large_only, "plan")


def test_the_plan_policy_without_a_plan_says_what_to_give(scenario: Scenario) -> None:
    with pytest.raises(Nb2PipeError, match=r"give --plan PLAN\.json"):
        simulate(scenario, "plan")


def test_the_two_reactive_runs_have_their_own_names_and_settings(scenario: Scenario) -> None:
    plain = simulate(scenario, "reactive")
    batched = simulate(scenario, "reactive-batched")
    assert (plain.policy, batched.policy) == ("reactive", "reactive-batched")
    assert plain.settings["variant"] == batched.settings["variant"] == "large"
    assert plain.settings["batch_size"] == 1 and plain.settings["metric"] == "utilization"
    planner_batch = next(o.batch_size for o in scenario.options if o.name == "large")
    assert batched.settings["batch_size"] == planner_batch > 1 and batched.settings["metric"] == "rps"
    assert plain.settings["world"] == batched.settings["world"]
    assert plain.settings["world"]["start_s"] == DAY_S and plain.settings["world"]["slo_ms"] == SLO_MS
    # batching is what a batched replica carries more of: fewer replica-hours
    assert batched.replica_hours < plain.replica_hours
    assert set(POLICIES) >= {"static", "reactive", "reactive-batched", "planner", "oracle", "plan", "deployed"}


def test_ratios_are_relative_to_the_named_run(scenario: Scenario) -> None:
    reports = [simulate(scenario, name) for name in ("static", "reactive", "oracle")]
    relative = ratios(reports, "reactive")
    reactive = reports[1]
    assert relative["reactive"]["run"] == "reactive" and relative["reactive"]["cost"] == 1.0
    assert relative["static"]["cost"] == pytest.approx(reports[0].cost / reactive.cost, rel=1e-5)
    assert reactive.violation_percent > 0  # the half-hourly bursts outrun a reactive policy
    expected = reports[2].violation_percent / reactive.violation_percent
    assert relative["oracle"]["violations"] == pytest.approx(expected, abs=1e-6)
    # no ratio to a run without violations
    spotless = [replace(r, violation_percent=0.0) if r.policy == "reactive" else r for r in reports]
    assert ratios(spotless, "reactive")["oracle"]["violations"] is None


@pytest.mark.parametrize("policy", ["static", "reactive", "oracle"])
def test_progress_is_reported_and_changes_no_figure(scenario: Scenario, policy: str) -> None:
    seen: list[float] = []
    with_progress = simulate(scenario, policy, progress=seen.append)
    without = simulate(scenario, policy)
    assert figures(with_progress) == figures(without)
    assert len(seen) >= 20  # at least once a simulated hour
    assert seen == sorted(seen) and seen[0] > 0 and seen[-1] <= 1
    assert seen[-1] >= 0.95
