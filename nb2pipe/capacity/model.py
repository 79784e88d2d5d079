"""From a measured profile to what one replica can carry under a latency SLO.

The rate a replica sustains with p99 <= SLO is found by simulating that replica alone
(Poisson arrivals, the profile's service-time distribution, dynamic batching up to the batch
size) and searching the highest rate that keeps the p99 under the SLO. The planner sizes
pools with these rates; pooling n replicas behind one queue only does better than n times
one, so the sizing errs on the safe side.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from nb2pipe.capacity.profile import Profile, ProfileError, Variant

#: simulated seconds per trial rate, and the search's relative precision
TRIAL_S = 400
PRECISION = 0.01


@dataclass(frozen=True)
class VariantOption:
    """One variant as the planner sees it: its best batch size and the rate it then carries."""

    name: str
    accuracy: float | None
    batch_size: int
    rate_per_replica: float
    #: p99 service time of a full batch (s): the batcher's waiting budget is what the SLO leaves
    service_p99_s: float
    model_uri: str | None = None
    #: what the profile measured it on (``cpu``, ``cuda:0 (NVIDIA H200)``): its rates hold there
    device: str = "cpu"


def service_times(variant: Variant, max_batch: int | None = None):  # -> engine.ServiceTimes
    """The variant's service-time distribution for every batch size 1..max_batch (seconds)."""
    from nb2pipe.capacity.engine import ServiceTimes

    largest = max_batch or variant.max_batch
    table = np.array([variant.service_quantiles_ms(size) for size in range(1, largest + 1)]) / 1000.0
    means = np.array([_mean(row) for row in table])
    return ServiceTimes(0, table, means)


def _mean(quantiles: np.ndarray) -> float:
    return float(((quantiles[1:] + quantiles[:-1]) / 2).mean())


def max_rate(variant: Variant, batch_size: int, slo_s: float, seed: int = 0) -> float:
    """Highest Poisson rate (requests/s) one replica serves with p99 latency <= ``slo_s``."""
    from nb2pipe.capacity.engine import PoolSimulation

    service = service_times(variant, batch_size)
    fastest = float(service.quantiles_s[batch_size - 1, 50])
    if float(service.quantiles_s[0, 99]) >= slo_s:
        return 0.0  # even a lone request misses the SLO too often
    high = batch_size / fastest  # full batches back to back: no replica does better
    low = 0.0

    def meets(rate: float) -> bool:
        simulation = PoolSimulation(np.full(TRIAL_S, rate), [service], slo_s=slo_s, cold_start_s=0.0, seed=seed)
        simulation.configure(0.0, [1], [batch_size], [0.0], [1.0])
        simulation.warmup(TRIAL_S * 0.1)
        result = simulation.finish()
        return result.p99_s <= slo_s

    while high - low > PRECISION * high:
        middle = (low + high) / 2
        low, high = (middle, high) if meets(middle) else (low, middle)
    return low


def with_slo_rates(profile: Profile, slo_ms: float) -> Profile:
    """The profile with every batch size's ``max_rate_under_slo`` for a p99 SLO of ``slo_ms``."""
    slo_s = slo_ms / 1000.0
    variants = tuple(
        replace(
            variant,
            batches=tuple(
                replace(batch, max_rate_under_slo=round(max_rate(variant, batch.batch_size, slo_s), 2))
                for batch in variant.batches
            ),
        )
        for variant in profile.variants
    )
    return replace(profile, variants=variants, slo_ms=slo_ms)


def rated(profile: Profile, slo_ms: float) -> Profile:
    """The profile with rates for this SLO: its own when it was made for it, else computed."""
    if profile.slo_ms == slo_ms and all(b.max_rate_under_slo is not None for v in profile.variants for b in v.batches):
        return profile
    return with_slo_rates(profile, slo_ms)


def options_for(
    profile: Profile, slo_ms: float, batch_sizes: tuple[int, ...] | None = None
) -> tuple[VariantOption, ...]:
    """Each variant at the measured batch size (of ``batch_sizes``, when given) that carries most
    under the SLO. Rates in the profile are used when it was made for this SLO."""
    profile = rated(profile, slo_ms)
    devices = profile.measured.get("devices") or {}
    options = []
    for variant in profile.variants:
        allowed = [b for b in variant.batches if batch_sizes is None or b.batch_size in batch_sizes]
        if not allowed:
            raise ProfileError(f"variant {variant.name!r} was not measured at batch sizes {batch_sizes}")
        best = max(allowed, key=lambda b: (b.max_rate_under_slo or 0.0, -b.batch_size))
        if not best.max_rate_under_slo:
            raise ProfileError(
                f"variant {variant.name!r} cannot meet a p99 of {slo_ms:g} ms even alone: its p99 service "
                f"time is {variant.batches[0].service_ms[99]:.1f} ms; raise --slo-ms or leave the variant out"
            )
        options.append(
            VariantOption(
                variant.name,
                variant.accuracy,
                best.batch_size,
                best.max_rate_under_slo,
                best.service_ms[99] / 1000.0,
                variant.model_uri,
                str(devices.get(variant.name) or "cpu"),
            )
        )
    return tuple(options)
