"""A synthetic latency profile for the capacity tests: two variants with known service times, so
a plan's rates and batch sizes can be checked by hand."""

from __future__ import annotations

from nb2pipe.capacity.profile import BatchProfile, Profile, Variant

BATCH_SIZES = (1, 2, 4, 8, 16)


def service_ms(base_ms: float, per_row_ms: float, batch: int) -> tuple[float, ...]:
    """A batch's service-time quantiles: a fixed cost plus one per row, spread +-20 % (uniform)."""
    return tuple((base_ms + per_row_ms * batch) * (0.8 + 0.4 * i / 100) for i in range(101))


def synthetic_profile(model_uri: str | None = None) -> Profile:
    """Two variants: a small fast one and a large accurate one, measured at batch 1..16."""

    def variant(name: str, base_ms: float, per_row_ms: float, accuracy: float) -> Variant:
        batches = tuple(BatchProfile(b, service_ms(base_ms, per_row_ms, b)) for b in BATCH_SIZES)
        return Variant(name, batches, model_uri, accuracy)

    return Profile((variant("small", 2.0, 1.0, 0.90), variant("large", 6.0, 4.0, 0.95)))
