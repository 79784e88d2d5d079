"""The replica-pool simulator against queueing theory, and its batching, scaling and accounting rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nb2pipe.capacity.engine import PoolSimulation, ServiceTimes, SimulationResult, WindowStats
from nb2pipe.capacity.queueing import erlang_c, md1_mean_wait, mm1_mean_wait, mmc_mean_wait
from nb2pipe.errors import Nb2PipeError


def steady(rate: float, service: ServiceTimes, replicas: int, seconds: int, *, seed: int = 0) -> SimulationResult:
    """One variant at a constant Poisson rate, batch 1, no batching wait, the first 2 % left out."""
    simulation = PoolSimulation(np.full(seconds, rate), [service], slo_s=1.0, cold_start_s=0.0, seed=seed)
    simulation.configure(0, [replicas], [1], [0.0], [1.0])
    simulation.warmup(seconds * 0.02)
    return simulation.finish()


def windows(simulation: PoolSimulation, start: float, end: float, step: float) -> list[WindowStats]:
    """advance() every ``step`` seconds from ``start`` to ``end``."""
    return [simulation.advance(t) for t in np.arange(start + step, end + step / 2, step)]


# ---------------------------------------------------------------- queueing theory


def test_md1_mean_wait_matches_pollaczek_khinchine() -> None:
    # 1.6 M requests: over seeds the error's spread is 0.6 %, so 5 % is far from the edge
    result = steady(80.0, ServiceTimes.deterministic(0.010), 1, 20_000)
    assert result.mean_wait_s == pytest.approx(md1_mean_wait(80.0, 0.010), rel=0.05)
    assert result.mean_latency_s == pytest.approx(result.mean_wait_s + 0.010, rel=1e-9)


def test_mmc_mean_wait_matches_erlang_c() -> None:
    # rho = 0.8 on 4 replicas; 2.5 M requests (spread over seeds 0.8 %)
    result = steady(64.0, ServiceTimes.exponential(0.050), 4, 40_000)
    assert result.mean_wait_s == pytest.approx(mmc_mean_wait(64.0, 0.050, 4), rel=0.05)
    assert result.mean_latency_s - result.mean_wait_s == pytest.approx(0.050, rel=0.01)


def test_mm1_mean_wait() -> None:
    result = steady(14.0, ServiceTimes.exponential(0.050), 1, 100_000)
    assert result.mean_wait_s == pytest.approx(mm1_mean_wait(14.0, 0.050), rel=0.05)


def test_empirical_service_times_are_sampled_by_inverse_cdf() -> None:
    # uniform on [5, 15] ms as 101 quantiles: M/G/1, whose P-K wait needs E[S^2] = var + mean^2
    low, high, rate = 0.005, 0.015, 80.0
    uniform = ServiceTimes(0, np.linspace(low, high, 101)[None, :], np.array([(low + high) / 2]))
    result = steady(rate, uniform, 1, 20_000)
    mean = (low + high) / 2
    second_moment = (high - low) ** 2 / 12 + mean**2
    rho = rate * mean
    assert result.mean_wait_s == pytest.approx(rate * second_moment / (2 * (1 - rho)), rel=0.05)
    assert result.mean_latency_s - result.mean_wait_s == pytest.approx(mean, rel=0.01)


def test_latency_percentiles_of_a_lone_replica_at_low_load() -> None:
    # almost nobody waits, so latency percentiles are the service distribution's
    low, high = 0.010, 0.030
    uniform = ServiceTimes(0, np.linspace(low, high, 101)[None, :], np.array([(low + high) / 2]))
    result = steady(0.5, uniform, 1, 40_000)
    for got, p in ((result.p50_s, 0.50), (result.p95_s, 0.95), (result.p99_s, 0.99)):
        assert got == pytest.approx(low + p * (high - low), rel=0.02)


def test_queueing_formulas() -> None:
    assert erlang_c(1, 0.8) == pytest.approx(0.8)  # a lone server: wait whenever it is busy
    assert mmc_mean_wait(14.0, 0.05, 1) == pytest.approx(mm1_mean_wait(14.0, 0.05))
    assert md1_mean_wait(14.0, 0.05) == pytest.approx(mm1_mean_wait(14.0, 0.05) / 2)
    assert 0.0 < erlang_c(2000, 1990.0) < 1.0  # factorials of 2000 would overflow
    waits = [mmc_mean_wait(64.0, 0.05, c) for c in range(4, 9)]
    assert waits == sorted(waits, reverse=True)
    for unstable in (lambda: md1_mean_wait(100.0, 0.01), lambda: erlang_c(4, 4.0), lambda: mmc_mean_wait(80, 0.05, 4)):
        with pytest.raises(Nb2PipeError, match="unstable"):
            unstable()


# ---------------------------------------------------------------- batching


def batched(rate: float, service: ServiceTimes, batch: int, wait: float, seconds: int) -> PoolSimulation:
    simulation = PoolSimulation(np.full(seconds, rate), [service], slo_s=1.0, cold_start_s=0.0, seed=3)
    simulation.configure(0, [1], [batch], [wait], [1.0])
    return simulation


def test_batching_raises_a_replicas_throughput() -> None:
    # a batch of any size takes 20 ms: one at a time carries 50/s, batches of 8 carry 400/s
    rate, service_s, seconds = 100.0, 0.020, 200
    service = ServiceTimes.deterministic(service_s, max_batch=8)
    one = batched(rate, service, 1, 0.0, seconds).advance(seconds)
    assert one.queued[0] > 0.8 * (rate - 1 / service_s) * seconds
    eight = batched(rate, service, 8, 0.0, seconds)
    last = eight.advance(seconds)
    assert last.queued[0] < 20
    # to keep up with 100/s at 50 batches/s the batches must average 2 requests or more
    assert last.arrivals[0] / (last.busy_s[0] / service_s) > 1.9
    result = eight.finish()
    assert result.mean_latency_s < 3 * service_s
    assert result.requests == last.arrivals[0]


def test_max_wait_holds_a_lone_request() -> None:
    # one request per 20 s: each waits the whole max_wait for company that rarely comes
    wait, service_s = 0.050, 0.010
    result = batched(0.05, ServiceTimes.deterministic(service_s, max_batch=4), 4, wait, 40_000).finish()
    assert result.requests > 1500
    assert result.mean_latency_s == pytest.approx(wait + service_s, rel=0.01)
    assert result.p50_s == pytest.approx(wait + service_s, rel=0.01)


def test_a_full_batch_leaves_before_max_wait() -> None:
    # batches of 2 and a max_wait never reached: the first waits for the second, Exp(rate) on average
    rate = 10.0
    result = batched(rate, ServiceTimes.deterministic(0.001, max_batch=2), 2, 100.0, 20_000).finish()
    assert result.mean_wait_s == pytest.approx(1 / (2 * rate), rel=0.05)


# ---------------------------------------------------------------- scaling and cost


def test_cold_start_delays_new_replicas() -> None:
    # 150/s on one 10 ms replica (100/s) grows the queue; 4 replicas from t=130 drain it at 250/s
    cold, step = 30.0, 5.0
    simulation = PoolSimulation(np.full(300, 150.0), [ServiceTimes.deterministic(0.010)], slo_s=1.0, cold_start_s=cold)
    simulation.configure(0, [1], [1], [0.0], [1.0])
    stats = windows(simulation, 0, 100, step)
    assert simulation.configure(100, [4], [1], [0.0], [1.0])
    stats += windows(simulation, 100, 300, step)
    queued = {w.end: w.queued[0] for w in stats}
    growing = [queued[t] for t in np.arange(step, 100 + cold + step / 2, step)]
    assert growing == sorted(growing) and growing[0] < growing[-1]
    draining = [queued[t] for t in np.arange(100 + cold, 160, step)]
    assert draining == sorted(draining, reverse=True) and draining[-1] < draining[0] / 2
    assert queued[200.0] < 20
    ready = {w.end: w.ready_replica_s[0] for w in stats}
    assert ready[130.0] == pytest.approx(step) and ready[135.0] == pytest.approx(4 * step)
    # a batch counts in the window it starts in, so it may end up to one service time past the window
    assert all(w.busy_s[0] <= w.ready_replica_s[0] + 4 * 0.010 + 1e-9 for w in stats)
    result = simulation.finish(300)
    assert result.cost_replica_s == pytest.approx(1 * 300 + (4 - 1) * (300 - 100))
    assert result.requests == sum(w.arrivals[0] for w in stats)
    assert result.reconfigurations == 1


def idle_pool_accounting(schedule: list[tuple[float, int]], cold: float, end: float) -> tuple[float, float]:
    """Cost and ready replica-seconds of an idle pool, by the removal rule: provisioning
    replicas go first, latest ready first, then ready ones (all idle here)."""
    alive: list[tuple[float, float]] = []  # (provisioned, ready)
    gone: list[tuple[float, float, float]] = []
    for i, (at, count) in enumerate(schedule):
        while len(alive) < count:
            alive.append((at, at if i == 0 else at + cold))
        alive.sort(key=lambda r: (r[1] <= at, -r[1]))  # provisioning first, latest ready first
        while len(alive) > count:
            provisioned, ready = alive.pop(0)
            gone.append((provisioned, ready, at))
    everyone = gone + [(provisioned, ready, end) for provisioned, ready in alive]
    cost = sum(leave - provisioned for provisioned, _, leave in everyone)
    ready_s = sum(max(0.0, leave - ready) for _, ready, leave in everyone)
    return cost, ready_s


def test_cost_counts_replica_seconds_from_provisioning_to_leaving() -> None:
    schedule = [(0.0, 2), (50.0, 5), (60.0, 3), (120.0, 1), (150.0, 4)]
    cold, end = 30.0, 200.0
    simulation = PoolSimulation(np.zeros(int(end)), [ServiceTimes.deterministic(0.01)], slo_s=1, cold_start_s=cold)
    stats: list[WindowStats] = []
    for at, count in schedule:
        if at > 0:
            stats.append(simulation.advance(at))
        simulation.configure(at, [count], [1], [0.0], [1.0])
    stats.append(simulation.advance(end))
    result = simulation.finish(end)
    cost, ready_s = idle_pool_accounting(schedule, cold, end)
    assert result.cost_replica_s == pytest.approx(cost)
    assert sum(w.ready_replica_s[0] for w in stats) == pytest.approx(ready_s)
    assert result.reconfigurations == len(schedule) - 1
    assert result.requests == 0 and math.isnan(result.p99_s)


def test_scaling_down_busy_replicas_loses_no_request() -> None:
    # 60/s on four 50 ms replicas, then one from t=100 (20/s): the queue grows, and drains at the end
    service_s = 0.050
    simulation = PoolSimulation(np.full(200, 60.0), [ServiceTimes.deterministic(service_s)], slo_s=1, cold_start_s=10)
    simulation.configure(0, [4], [1], [0.0], [1.0])
    stats = windows(simulation, 0, 100, 5.0)
    assert simulation.configure(100, [1], [1], [0.0], [1.0])
    after = simulation.advance(105)
    stats += [after, *windows(simulation, 105, 200, 5.0)]
    # the three leaving replicas were busy: each finishes its batch (at most 50 ms) first
    assert 5.0 <= after.ready_replica_s[0] <= 5.0 + 3 * service_s
    assert after.busy_s[0] <= after.ready_replica_s[0]
    result = simulation.finish(200)
    arrivals = sum(w.arrivals[0] for w in stats)
    assert result.requests == arrivals == result.served[0]
    assert result.stranded == 0 and result.max_queue > 1000
    assert 4 * 100 + 1 * 100 <= result.cost_replica_s <= 4 * 100 + 1 * 100 + 3 * service_s


def test_requests_left_without_replicas_count_as_violations() -> None:
    simulation = PoolSimulation(np.full(100, 50.0), [ServiceTimes.deterministic(0.05)], slo_s=1, cold_start_s=0)
    simulation.configure(0, [1], [1], [0.0], [1.0])
    first = simulation.advance(50)
    simulation.configure(50, [0], [1], [0.0], [1.0])
    second = simulation.advance(100)
    result = simulation.finish(100)
    assert result.requests == first.arrivals[0] + second.arrivals[0]
    assert result.stranded == second.queued[0] > 2000
    assert result.violations >= result.stranded
    assert result.served[0] == result.requests - result.stranded


def test_traffic_split_routes_by_share() -> None:
    services = [ServiceTimes.deterministic(0.001)] * 3
    simulation = PoolSimulation(np.full(400, 100.0), services, slo_s=1, cold_start_s=0, seed=5)
    simulation.configure(0, [1, 1, 1], [1, 1, 1], [0.0] * 3, [0.25, 0.75, 0.0])
    first = simulation.advance(200)
    assert first.arrivals[2] == 0
    assert first.arrivals[0] / sum(first.arrivals) == pytest.approx(0.25, abs=0.01)
    simulation.configure(200, [1, 1, 1], [1, 1, 1], [0.0] * 3, [0.0, 0.0, 1.0])
    second = simulation.advance(400)
    assert second.arrivals[:2] == (0, 0) and second.arrivals[2] > 0
    result = simulation.finish()
    assert result.served == tuple(a + b for a, b in zip(first.arrivals, second.arrivals, strict=True))


# ---------------------------------------------------------------- determinism and validation


def test_same_seed_same_result_and_simulations_do_not_share_a_generator() -> None:
    def make(seed: int) -> PoolSimulation:
        simulation = PoolSimulation(
            np.full(300, 30.0), [ServiceTimes.exponential(0.05)], slo_s=0.1, cold_start_s=0, seed=seed
        )
        simulation.configure(0, [2], [1], [0.0], [1.0])
        return simulation

    alone = make(1).finish()
    assert alone.requests > 8000
    # two simulations advanced in turns: each still gets its own seed's numbers
    a, b = make(1), make(2)
    for t in range(15, 301, 15):
        a.advance(t)
        b.advance(t)
    assert a.finish() == alone
    other = b.finish()
    assert other != alone and other.requests != alone.requests
    assert not math.isnan(alone.mean_latency_s)


def test_bad_configurations_are_refused() -> None:
    simulation = PoolSimulation(
        np.full(10, 1.0), [ServiceTimes.deterministic(0.01, max_batch=4)], slo_s=1, cold_start_s=0
    )
    with pytest.raises(Nb2PipeError, match="configure"):
        simulation.advance(1)
    with pytest.raises(Nb2PipeError, match="time 0"):
        simulation.configure(1, [1], [1], [0.0], [1.0])
    with pytest.raises(Nb2PipeError, match="split must sum to 1"):
        simulation.configure(0, [1], [1], [0.0], [0.9])
    for batch in (0, 5):
        with pytest.raises(Nb2PipeError, match="batch size"):
            simulation.configure(0, [1], [batch], [0.0], [1.0])
    with pytest.raises(Nb2PipeError, match="replica counts"):
        simulation.configure(0, [-1], [1], [0.0], [1.0])
    with pytest.raises(Nb2PipeError, match="one value per variant"):
        simulation.configure(0, [1, 1], [1], [0.0], [1.0])
    assert simulation.configure(0, [1], [4], [0.0], [1.0])
    assert not simulation.configure(0, [1], [4], [0.0], [1.0])
    simulation.advance(5)
    with pytest.raises(Nb2PipeError, match="back in time"):
        simulation.configure(4, [1], [4], [0.0], [1.0])
    with pytest.raises(Nb2PipeError, match="back in time"):
        simulation.advance(4)
    with pytest.raises(Nb2PipeError, match="warmup"):
        simulation.warmup(1)
    simulation.finish()
    with pytest.raises(Nb2PipeError, match="finished"):
        simulation.advance(20)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(Nb2PipeError, match="rates"):
        PoolSimulation(np.array([1.0, -1.0]), [ServiceTimes.deterministic(0.01)], slo_s=1, cold_start_s=0)
    with pytest.raises(Nb2PipeError, match="variants"):
        PoolSimulation(np.ones(3), [ServiceTimes.deterministic(0.01)] * 5, slo_s=1, cold_start_s=0)
    with pytest.raises(Nb2PipeError, match="shape"):
        ServiceTimes(0, np.zeros((2, 100)), np.zeros(2))
    with pytest.raises(Nb2PipeError, match="decrease"):
        ServiceTimes(0, np.linspace(1, 0, 101)[None, :], np.ones(1))
    with pytest.raises(Nb2PipeError, match="slo_s"):
        PoolSimulation(np.ones(3), [ServiceTimes.deterministic(0.01)], slo_s=math.nan, cold_start_s=0)
