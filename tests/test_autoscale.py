"""``nb2pipe autoscale``'s decision step and loop, without any server: synthetic rates, a fake
clock, a recording actuator."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from nb2pipe.capacity import policies
from nb2pipe.capacity.autoscale import SURGE_HEADROOM, Controller, Loop, LoopSettings, decision_logger, forecaster_of
from nb2pipe.capacity.control import Decision, VariantSetting
from nb2pipe.capacity.forecast import OnlineForecaster
from nb2pipe.capacity.model import VariantOption
from nb2pipe.capacity.optimize import Optimizer
from nb2pipe.capacity.plan import CapacityPlan, PlanError, build_plan, read_plan, write_plan
from nb2pipe.errors import Nb2PipeError
from tests.support.fake_clock import FakeClock

#: midnight UTC: interval k of the day starts at T0 + 30 k
T0 = 19675 * 86400.0
RATE = 10.0  # requests/s one replica carries under the SLO
FOREST = VariantOption("forest", None, 4, RATE, 0.05, "models:/forest/1")
FORECASTER = OnlineForecaster(30, 30, 60, 0, (1.2,), 1.0, 0.99, "peak")


def make_plan(
    options: tuple[VariantOption, ...] = (FOREST,),
    forecaster: OnlineForecaster | None = FORECASTER,
    cold_start_s: float = 30.0,
    accuracy_value: float = 1.0,
) -> CapacityPlan:
    optimizer = Optimizer(options, accuracy_value)
    return build_plan(
        [5.0, 40.0],
        0,
        optimizer,
        slo_ms=200.0,
        interval_s=30,
        cold_start_s=cold_start_s,
        price_per_replica_hour=1.0,
        forecast={"method": "online"},
        online=forecaster,
    )


def feed(controller: Controller, rates: np.ndarray, start: float, step: float = 1.0) -> float:
    """Readings of ``rates`` (one per ``step``), the first covering ``start``; returns the last time."""
    at = start
    for rate in rates:
        at += step
        controller.observe(at, float(rate))
    return at


def one_second(rate_window_s: float = 1.0) -> LoopSettings:
    return LoopSettings(step_s=1.0, rate_window_s=rate_window_s, stale_after_s=2.0)


def replicas(decision: Decision, variant: str = "forest") -> int:
    return next(s.replicas for s in decision.settings if s.variant == variant)


def test_the_plan_file_carries_the_fitted_forecaster(tmp_path: Path) -> None:
    plan = make_plan(forecaster=OnlineForecaster(30, 30, 60, 1800, tuple(1.0 + i / 100 for i in range(60)), 2.5))
    loaded = read_plan(write_plan(tmp_path / "plan.json", plan))
    assert loaded.online == plan.online
    assert forecaster_of(loaded) == plan.online


def test_a_day_ahead_plan_is_refused_with_what_to_do() -> None:
    with pytest.raises(PlanError, match=r"nb2pipe plan --days"):
        forecaster_of(make_plan(forecaster=None))


def day_ahead_plan(forecasts: list[float], forecaster: OnlineForecaster | None = FORECASTER) -> CapacityPlan:
    """A day-ahead plan for the day starting at second ``start`` of the trace (as nb2pipe plan --online)."""
    return build_plan(
        forecasts,
        7 * 86400,
        Optimizer((FOREST,)),
        slo_ms=200.0,
        interval_s=30,
        cold_start_s=30.0,
        price_per_replica_hour=1.0,
        forecast={"method": "day-ahead", "online": FORECASTER.describe()},
        online=forecaster,
    )


def test_a_day_ahead_plan_is_a_floor_under_the_online_forecast_by_time_of_day() -> None:
    day = [5.0] * 2880
    day[600:602] = [80.0, 80.0]  # 05:00-05:01 UTC: the plan expects a burst
    controller = Controller(day_ahead_plan(day), one_second())
    quiet = np.full(120, 4.0)
    # the next day, just before 05:00 minus one cold start: the burst's interval must be provisioned now
    before = feed(controller, quiet, T0 + 86400 + 600 * 30 - 150)
    decision = controller.decide(before)
    assert replicas(decision) == 8
    assert "online 4.8, day-ahead floor 80.0" in decision.reason
    # at noon the same quiet rates get what the online forecast says (the floor there is 5 req/s)
    noon = feed(controller, quiet, T0 + 86400 + 43200 - 120)
    calm = controller.decide(noon)
    assert replicas(calm) == 1
    assert "day-ahead floor 5.0" in calm.reason
    # the online forecast is still on top: a rise the plan did not expect gets its replicas
    rising = feed(controller, np.concatenate([quiet[:60], np.full(60, 60.0)]), noon)
    assert replicas(controller.decide(rising)) == math.ceil(60 * 1.2 / RATE)


def test_a_day_ahead_plan_without_its_online_forecaster_or_a_whole_day_is_refused() -> None:
    with pytest.raises(PlanError, match=r"nb2pipe plan --online"):
        forecaster_of(day_ahead_plan([5.0] * 2880, forecaster=None))
    with pytest.raises(PlanError, match=r"one day \(2880 intervals of 30 s\); this one has 10"):
        Controller(day_ahead_plan([5.0] * 10))


def test_forecasts_equal_the_simulators_on_the_same_seconds() -> None:
    rng = np.random.default_rng(3)
    trace = rng.uniform(2, 60, size=600)
    controller = Controller(make_plan(), one_second())
    for second in (150, 299, 300, 451):
        controller.samples.clear()
        now = feed(controller, trace[:second], T0)
        current, last = int((now - T0) // 30), int((now - T0 + 30) // 30)
        expected = FORECASTER.predict(trace, current, last - current + 1)
        assert controller._forecasts(now, int(now // 30), last - current + 1) == pytest.approx(expected.tolist())


def test_a_ramp_gets_its_replicas_one_cold_start_ahead() -> None:
    plan = make_plan()
    controller = Controller(plan, one_second())
    # 4 req/s for a minute, then +1 req/s every second
    ramp = np.concatenate([np.full(60, 4.0), 4.0 + np.arange(1, 61)])
    now = feed(controller, ramp, T0)  # T0 + 120: interval 4 starts, interval 5 starts one cold start later
    decision = controller.decide(now)
    # interval 5 is forecast from the last 60 s seen now: its peak (64) x headroom 1.2
    needed = math.ceil(64 * 1.2 / RATE)
    assert replicas(decision) == needed
    assert decision.forecast_rps == pytest.approx(64 * 1.2)
    assert "intervals" in decision.reason and not decision.fallback
    # the simulator's planner, at the same moment, runs the same replicas (the most of intervals 4 and 5)
    optimizer = Optimizer(plan.options)
    planned = [optimizer.best(f).replicas for f in FORECASTER.predict(ramp, 4, 2)]
    assert replicas(decision) == max(planned)


def test_the_surge_headroom_is_the_simulated_planners() -> None:
    assert SURGE_HEADROOM == policies.SURGE_HEADROOM


def test_a_surge_above_what_was_provisioned_gets_replicas_now_and_keeps_them() -> None:
    controller = Controller(make_plan(), LoopSettings(step_s=5.0, rate_window_s=5.0, stale_after_s=10.0))
    now = feed(controller, np.full(30, 5.0), T0, step=5.0)  # 150 s at 5 req/s: 1 replica
    assert replicas(controller.decide(now)) == 1
    controller.observe(now + 5, 50.0)
    surged = controller.decide(now + 5)
    assert replicas(surged) == math.ceil(50 * SURGE_HEADROOM / RATE)
    assert "surge: 50.0 req/s over the 10.0 provisioned" in surged.reason
    # the rate falls back, but the boost holds for a cold start and two intervals
    controller.observe(now + 10, 5.0)
    held = controller.decide(now + 10)
    assert replicas(held) >= math.ceil(50 * SURGE_HEADROOM / RATE)
    assert "held" in held.reason
    later = now + 5 + 30 + 2 * 30 + 65  # boost over, the 50 req/s reading out of the window
    feed(controller, np.full(int((later - now - 10) // 5), 5.0), now + 10, step=5.0)
    assert replicas(controller.decide(later)) == 1


def test_missing_metrics_keep_the_last_floor_and_say_so() -> None:
    controller = Controller(make_plan(), LoopSettings(step_s=5.0, rate_window_s=5.0, stale_after_s=10.0))
    now = feed(controller, np.full(30, 30.0), T0, step=5.0)
    normal = controller.decide(now)
    assert replicas(normal) == math.ceil(30 * 1.2 / RATE)
    controller.observe(now + 5, None)
    missing = controller.decide(now + 5)
    assert missing.fallback and missing.observed_rps is None
    assert missing.settings == normal.settings
    assert "no request rate for 5 s: keeping the last safe floor" in missing.reason
    # no reading at all for longer than stale_after_s: the same
    stale = controller.decide(now + 60)
    assert stale.fallback and stale.settings == normal.settings
    # NaN and negative readings are missing readings, never a zero rate
    controller.observe(now + 61, float("nan"))
    assert controller.decide(now + 61).fallback
    # when the rate comes back low after a gap, the floor holds until a whole window is seen again
    controller.observe(now + 65, 5.0)
    back = controller.decide(now + 65)
    assert replicas(back) == replicas(normal) and "warming up" in back.reason
    # the gap's seconds count at the rate read before it (30 req/s) while the forecast window holds them
    gap_in_window = feed(controller, np.full(13, 5.0), now + 65, step=5.0)
    assert replicas(controller.decide(gap_in_window)) == replicas(normal)
    later = feed(controller, np.full(10, 5.0), gap_in_window, step=5.0)
    assert replicas(controller.decide(later)) == 1


def test_with_no_rate_ever_the_floor_is_never_zero() -> None:
    decision = Controller(make_plan()).decide(T0)
    assert decision.fallback and "no request rate yet" in decision.reason
    assert replicas(decision) >= 1 and sum(s.percent for s in decision.settings) == 100


def test_a_restart_resumes_from_what_runs_until_a_window_is_seen() -> None:
    controller = Controller(make_plan(), LoopSettings(step_s=5.0, rate_window_s=5.0, stale_after_s=10.0))
    running = (VariantSetting("forest", 7, 9, 4, 75, 100),)
    controller.resume(running)
    # right after a restart, with nothing read: what runs is kept, not the plan's minimum
    assert controller.decide(T0).settings == running
    now = feed(controller, np.full(4, 5.0), T0, step=5.0)  # 20 s of a 60 s window
    warming = controller.decide(now)
    assert replicas(warming) == 7 and "warming up" in warming.reason
    now = feed(controller, np.full(12, 5.0), now, step=5.0)  # the window is full: 1 replica will do
    assert replicas(controller.decide(now)) == 1


def test_resuming_on_variants_the_plan_does_not_know_is_refused() -> None:
    controller = Controller(make_plan())
    with pytest.raises(Nb2PipeError, match="variants boosted that the plan does not know"):
        controller.resume((VariantSetting("boosted", 1, 1, 1, 1, 100),))


def test_several_variants_get_a_split_of_whole_percents_and_every_variant_a_setting() -> None:
    small = VariantOption("small", 0.90, 8, 20.0, 0.02)
    big = VariantOption("big", 0.95, 2, 5.0, 0.08)
    controller = Controller(make_plan((small, big), accuracy_value=0.5), one_second())
    now = feed(controller, np.full(120, 40.0), T0)
    decision = controller.decide(now)
    assert {s.variant for s in decision.settings} == {"small", "big"}
    assert sum(s.percent for s in decision.settings) == 100
    assert all(s.max_replicas >= s.replicas and s.max_replicas >= 1 for s in decision.settings)
    capacity = sum(s.replicas * {"small": 20.0, "big": 5.0}[s.variant] for s in decision.settings)
    assert capacity >= 40 * 1.2
    big_setting = next(s for s in decision.settings if s.variant == "big")
    assert big_setting.batch_size == 2 and big_setting.max_latency_ms == 60  # (200 - 80) / 2


def test_it_wakes_at_each_interval_and_one_cold_start_before_it() -> None:
    controller = Controller(make_plan(cold_start_s=45.0), LoopSettings(step_s=15.0))
    assert controller.next_turn(T0 + 10) == T0 + 15  # interval 2 starts at +60: replicas start at +15
    assert controller.next_turn(T0 + 15) == T0 + 30
    assert controller.next_turn(T0 + 31) == T0 + 45


@dataclass
class FakeSource:
    rates: list[float | None]
    history: list[float | None] = field(default_factory=list)
    last_error: str | None = None
    asked: list[float] = field(default_factory=list)

    def request_rate(self, window_s: float) -> float | None:
        self.asked.append(window_s)
        return self.rates.pop(0)

    def recent_rates(self, seconds: float, step_s: float) -> list[float | None]:
        return list(self.history)


@dataclass
class FakeActuator:
    running: tuple[VariantSetting, ...] | None = None
    applied: list[Decision] = field(default_factory=list)

    def current(self) -> tuple[VariantSetting, ...] | None:
        return self.running

    def apply(self, decision: Decision) -> None:
        self.applied.append(decision)
        self.running = decision.settings


def make_loop(source: FakeSource, actuator: FakeActuator, lines: list[str], dry_run: bool = False) -> Loop:
    clock = FakeClock(T0 + 7)
    settings = LoopSettings(step_s=15.0, rate_window_s=60.0, stale_after_s=30.0)

    class Lines:
        def write(self, text: str) -> None:
            lines.append(text)

        def flush(self) -> None:
            return None

    return Loop(
        Controller(make_plan(), settings), source, actuator, clock, clock.sleep, decision_logger(Lines()), dry_run
    )


def test_the_loop_resumes_seeds_applies_logs_and_sleeps_boundedly() -> None:
    source = FakeSource([20.0, 20.0, None], history=[20.0] * 7)
    actuator = FakeActuator((VariantSetting("forest", 5, 6, 4, 75, 100),))
    lines: list[str] = []
    loop = make_loop(source, actuator, lines)
    assert loop.run(3) == 3
    assert source.asked == [60.0, 60.0, 60.0]
    assert [replicas(d) for d in actuator.applied] == [3, 3, 3]  # 20 x 1.2 / 10; the missing rate keeps 3
    assert actuator.applied[-1].fallback
    sleeps = loop.sleep.__self__.slept  # type: ignore[attr-defined]
    assert len(sleeps) == 2 and all(0 <= s <= 15 for s in sleeps)
    logged = [json.loads(line) for line in lines]
    assert [entry["fallback"] for entry in logged] == [False, False, True]
    assert logged[0]["settings"][0] == {
        "variant": "forest",
        "replicas": 3,
        "max_replicas": 4,  # the plan's envelope: its busiest interval (40 req/s) needs 4
        "batch_size": 4,
        "max_latency_ms": 75,
        "percent": 100,
    }


def test_the_loop_stops_when_told_before_its_next_turn() -> None:
    source = FakeSource([20.0] * 10, history=[20.0] * 7)
    actuator = FakeActuator(None)
    loop = make_loop(source, actuator, [])
    told = iter([False, False, True])
    assert loop.run(until=lambda: next(told)) == 2
    assert len(actuator.applied) == 2
    # already told: not one turn more
    assert loop.go_on(until=lambda: True) == 0 and len(actuator.applied) == 2


def test_a_dry_run_applies_nothing_and_a_fallback_names_the_sources_error() -> None:
    source = FakeSource([None], last_error="http://prom:9090/api/v1/query did not answer within 5 s")
    actuator = FakeActuator((VariantSetting("forest", 2, 4, 4, 75, 100),))
    lines: list[str] = []
    decision = make_loop(source, actuator, lines, dry_run=True)
    decision.start()
    taken = decision.turn()
    assert actuator.applied == []
    assert taken.fallback and taken.settings == actuator.running
    assert "did not answer within 5 s" in json.loads(lines[0])["reason"]
