"""The exact search of replicas and traffic split against brute force, and its corner cases."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from nb2pipe.capacity.model import VariantOption
from nb2pipe.capacity.optimize import Allocation, Optimizer
from nb2pipe.errors import Nb2PipeError


def option(name: str, accuracy: float | None, rate: float, batch: int = 4) -> VariantOption:
    return VariantOption(
        name=name,
        accuracy=accuracy,
        batch_size=batch,
        rate_per_replica=rate,
        service_p99_s=0.02,
        model_uri=f"models:/{name}/1",
    )


def brute_force(options: list[VariantOption], load: float, accuracy_value: float) -> tuple[float, int]:
    """Best (score, replicas) over every replica vector up to ceil(load / rate) per variant,
    the load split greedily (most accurate first); ties go to fewer replicas."""
    ordered = sorted(options, key=lambda o: -(o.accuracy or 0.0))
    bounds = [range(math.ceil(load / o.rate_per_replica) + 1) for o in ordered]
    counts = np.array(list(itertools.product(*bounds)), dtype=np.float64)  # (combinations, variants)
    carries = counts * np.array([o.rate_per_replica for o in ordered])
    feasible = carries.sum(axis=1) >= load
    counts, carries = counts[feasible], carries[feasible]
    before = np.cumsum(carries, axis=1) - carries  # what the more accurate variants already took
    taken = np.clip(load - before, 0.0, carries)
    accuracy = (taken * np.array([o.accuracy or 0.0 for o in ordered])).sum(axis=1) / load
    replicas = counts.sum(axis=1)
    score = accuracy_value * 100 * accuracy - replicas
    top = score.max()
    tied = np.isclose(score, top, rtol=0, atol=1e-9)
    return float(top), int(replicas[tied].min())


def score_of(allocation: Allocation, accuracy_value: float) -> float:
    return accuracy_value * 100 * (allocation.accuracy or 0.0) - allocation.replicas


def check_allocation(allocation: Allocation, options: list[VariantOption], load: float) -> None:
    rates = {o.name: o.rate_per_replica for o in options}
    accuracies = {o.name: o.accuracy for o in options}
    capacity = sum(s.replicas * rates[s.variant] for s in allocation.shares)
    assert allocation.capacity_rps == pytest.approx(capacity, rel=1e-12)
    assert capacity >= load - 1e-6
    assert sum(s.traffic for s in allocation.shares) == pytest.approx(1.0, abs=1e-12)
    for share in allocation.shares:
        assert share.replicas >= 1
        assert 0.0 <= share.traffic <= 1.0
        # nobody is sent more than its replicas carry
        assert share.traffic * load <= share.replicas * rates[share.variant] + 1e-6
    if all(a is not None for a in accuracies.values()):
        expected = sum(s.traffic * (accuracies[s.variant] or 0.0) for s in allocation.shares)
        assert allocation.accuracy == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", range(12))
def test_best_equals_brute_force_on_random_profiles(seed: int) -> None:
    rng = np.random.default_rng(seed)
    variants = int(rng.integers(2, 4))
    options = [
        option(f"v{i}", round(float(rng.uniform(0.7, 0.99)), 4), round(float(rng.uniform(10, 250)), 2), 2**i)
        for i in range(variants)
    ]
    accuracy_value = float(rng.choice([0.0, 0.3, 1.0, 3.0, 10.0]))
    optimizer = Optimizer(tuple(options), accuracy_value)
    loads = sorted({1, 500, *rng.integers(1, 501, size=10).tolist()})
    for load in loads:
        allocation = optimizer.best(float(load))
        check_allocation(allocation, options, float(load))
        best_score, fewest = brute_force(options, float(load), accuracy_value)
        assert score_of(allocation, accuracy_value) == pytest.approx(best_score, abs=1e-9), (load, options)
        assert allocation.replicas == fewest, (load, options)


def test_a_fractional_load_is_planned_as_the_next_whole_request_rate() -> None:
    optimizer = Optimizer((option("only", 0.9, 10.0),))
    assert optimizer.best(20.2).replicas == 3  # 21 requests/s: rounded up, never down
    assert optimizer.best(20.0).replicas == 2
    assert optimizer.best(0.0).replicas == 1  # an idle interval keeps a replica


@pytest.mark.parametrize("rate", [7.0, 33.3, 120.0])
def test_one_variant_takes_just_enough_replicas(rate: float) -> None:
    optimizer = Optimizer((option("solo", None, rate),))
    for load in (1, 7, 50, 99, 333, 500):
        allocation = optimizer.best(float(load))
        assert allocation.replicas == math.ceil(load / rate)
        assert [s.variant for s in allocation.shares] == ["solo"]
        assert allocation.shares[0].traffic == 1.0
        assert allocation.accuracy is None
        assert allocation.capacity_rps >= load


def test_without_a_value_for_accuracy_the_cheapest_pool_wins() -> None:
    options = [option("accurate", 0.97, 12.0), option("middle", 0.9, 40.0), option("fast", 0.8, 95.0)]
    optimizer = Optimizer(tuple(options), accuracy_value=0.0)
    for load in (1, 30, 95, 96, 180, 250, 401, 500):
        allocation = optimizer.best(float(load))
        check_allocation(allocation, options, float(load))
        fewest = min(
            sum(counts)
            for counts in itertools.product(*(range(math.ceil(load / o.rate_per_replica) + 1) for o in options))
            if sum(n * o.rate_per_replica for n, o in zip(counts, options, strict=True)) >= load
        )
        assert allocation.replicas == fewest


def test_a_huge_value_for_accuracy_serves_everything_with_the_most_accurate_variant() -> None:
    options = [option("fast", 0.8, 95.0), option("accurate", 0.97, 12.0), option("middle", 0.9, 40.0)]
    optimizer = Optimizer(tuple(options), accuracy_value=1e6)
    for load in (1, 30, 250, 500):
        allocation = optimizer.best(float(load))
        assert [(s.variant, s.traffic) for s in allocation.shares] == [("accurate", 1.0)]
        assert allocation.replicas == math.ceil(load / 12.0)
        assert allocation.accuracy == pytest.approx(0.97)


def test_a_mixed_pool_fills_the_accurate_variant_first() -> None:
    # 850 requests/s: three of b alone score 90 - 3; one of a and two of b score 90.59 - 3
    options = (option("b", 0.9, 400.0), option("a", 0.95, 100.0))
    allocation = Optimizer(options).best(850.0)
    assert [(s.variant, s.replicas) for s in allocation.shares] == [("a", 1), ("b", 2)]
    assert allocation.shares[0].traffic == pytest.approx(100 / 850)
    assert allocation.accuracy == pytest.approx((100 * 0.95 + 750 * 0.9) / 850)
    assert allocation.replicas == allocation.replicas_of("a") + allocation.replicas_of("b") == 3
    assert allocation.replicas_of("missing") == 0


def test_several_variants_need_accuracies() -> None:
    with pytest.raises(Nb2PipeError, match="needs an accuracy") as caught:
        Optimizer((option("known", 0.9, 10.0), option("unknown", None, 20.0)))
    assert "unknown" in str(caught.value) and "known," not in str(caught.value)
    with pytest.raises(Nb2PipeError, match="needs an accuracy"):
        Optimizer((option("a", None, 10.0), option("b", None, 20.0)))


def test_no_variant_and_too_many_replicas_are_refused() -> None:
    with pytest.raises(Nb2PipeError, match="no variant"):
        Optimizer(())
    optimizer = Optimizer((option("slow", 0.9, 1.0),), max_replicas=10)
    assert optimizer.best(10.0).replicas == 10
    with pytest.raises(Nb2PipeError, match="more than 10 replicas"):
        optimizer.best(11.0)
