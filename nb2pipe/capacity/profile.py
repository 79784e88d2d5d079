"""A serving latency profile: what ``nb2pipe profile`` measured, as ``PROFILE.json``.

One file holds one or more model *variants* (say a small and a large model with their
accuracies). For each variant and batch size it keeps the service-time distribution of one
batch (101 quantiles measured with one client: no queueing) and the closed-loop load points
(throughput and latency percentiles at each client concurrency). The planner and the
simulator read only these numbers, so a profile measured once drives every later plan.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn

from nb2pipe.errors import Nb2PipeError
from nb2pipe.files import read_json, write_whole

PROFILE_FORMAT = "nb2pipe.profile/1"
QUANTILES = 101  # service time at probabilities 0, 0.01, ..., 1


class ProfileError(Nb2PipeError):
    """A profile file that cannot be read or does not describe a usable model."""


@dataclass(frozen=True)
class LoadPoint:
    """Closed-loop measurement: ``concurrency`` clients each sending batches back to back."""

    concurrency: int
    batches: int
    errors: int
    #: inference requests (rows) answered per second
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float


@dataclass(frozen=True)
class BatchProfile:
    batch_size: int
    #: a batch's service time (ms) at probabilities 0, 0.01, ..., 1, measured with one client
    service_ms: tuple[float, ...]
    load: tuple[LoadPoint, ...] = ()
    #: requests/s one replica sustains with p99 <= the profile's SLO (from the service times)
    max_rate_under_slo: float | None = None

    @property
    def mean_ms(self) -> float:
        # trapezoids over the quantile function: the mean of the distribution it describes
        q = self.service_ms
        return sum((q[i] + q[i + 1]) / 2 for i in range(len(q) - 1)) / (len(q) - 1)


@dataclass(frozen=True)
class Variant:
    name: str
    batches: tuple[BatchProfile, ...]
    model_uri: str | None = None
    #: the model's accuracy (0..1) when known; the planner weighs it against cost
    accuracy: float | None = None

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        return tuple(b.batch_size for b in self.batches)

    @property
    def max_batch(self) -> int:
        return self.batches[-1].batch_size

    def batch(self, size: int) -> BatchProfile:
        for measured in self.batches:
            if measured.batch_size == size:
                return measured
        raise ProfileError(f"variant {self.name!r} has no measurement at batch size {size}")

    def service_quantiles_ms(self, size: int) -> tuple[float, ...]:
        """Quantiles at any batch size up to the largest measured one: linear between the
        two measured sizes around it (a batch's cost grows about linearly with its rows)."""
        if not 1 <= size <= self.max_batch:
            raise ProfileError(f"variant {self.name!r}: batch size {size} is outside 1..{self.max_batch}")
        below = max((b for b in self.batches if b.batch_size <= size), key=lambda b: b.batch_size, default=None)
        above = min((b for b in self.batches if b.batch_size >= size), key=lambda b: b.batch_size)
        if below is None:  # smaller than the smallest measured size: no cheaper than it
            return above.service_ms
        if below.batch_size == above.batch_size:
            return below.service_ms
        share = (size - below.batch_size) / (above.batch_size - below.batch_size)
        return tuple(lo + share * (hi - lo) for lo, hi in zip(below.service_ms, above.service_ms, strict=True))


@dataclass(frozen=True)
class Profile:
    variants: tuple[Variant, ...]
    #: the p99 SLO the ``max_rate_under_slo`` figures were computed for
    slo_ms: float | None = None
    #: where and how it was measured (host, cpu count, nb2pipe version, requests per point)
    measured: dict[str, Any] = field(default_factory=dict, compare=False)

    def variant(self, name: str) -> Variant:
        for variant in self.variants:
            if variant.name == name:
                return variant
        names = ", ".join(v.name for v in self.variants)
        raise ProfileError(f"the profile has no variant {name!r}; it has {names}")

    def select(self, names: list[str] | None) -> Profile:
        """Only the named variants, in the given order (all when ``names`` is empty)."""
        if not names:
            return self
        return replace(self, variants=tuple(self.variant(n) for n in names))


def profile_to_json(profile: Profile) -> dict[str, Any]:
    return {
        "format": PROFILE_FORMAT,
        "slo_ms": profile.slo_ms,
        "measured": profile.measured,
        "variants": [
            {
                "name": v.name,
                "model_uri": v.model_uri,
                "accuracy": v.accuracy,
                "batches": [
                    {
                        "batch_size": b.batch_size,
                        "mean_ms": round(b.mean_ms, 4),
                        "service_ms": [round(x, 4) for x in b.service_ms],
                        "max_rate_under_slo": b.max_rate_under_slo,
                        "load": [vars(point) for point in b.load],
                    }
                    for b in v.batches
                ],
            }
            for v in profile.variants
        ],
    }


def write_profile(path: str | Path, profile: Profile) -> Path:
    target = Path(path)
    write_whole(target, json.dumps(profile_to_json(profile), indent=2) + "\n")
    return target


def read_profile(path: str | Path) -> Profile:
    source = Path(path)
    data = read_json(source, f"make one with nb2pipe profile MODEL_URI -o {source}", ProfileError)
    return profile_from_json(data, str(source))


def profile_from_json(data: Any, source: str = "profile") -> Profile:
    reader = _Reader(source)
    top = reader.mapping(data, "")
    if top.get("format") != PROFILE_FORMAT:
        reader.fail("format", f"expected {PROFILE_FORMAT!r}, found {top.get('format')!r}")
    variants = tuple(_variant(reader, item, f"variants[{i}]") for i, item in enumerate(reader.items(top, "variants")))
    if not variants:
        reader.fail("variants", "lists no variant; profile at least one model")
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        reader.fail("variants", f"variant names repeat: {', '.join(names)}")
    slo = top.get("slo_ms")
    if slo is not None:
        slo = reader.positive(slo, "slo_ms")
    return Profile(variants, slo, dict(top.get("measured") or {}))


def _variant(reader: _Reader, data: Any, where: str) -> Variant:
    item = reader.mapping(data, where)
    name = item.get("name")
    if not isinstance(name, str) or not name:
        reader.fail(f"{where}.name", "needs a name")
    accuracy = item.get("accuracy")
    if accuracy is not None and not (isinstance(accuracy, int | float) and 0 <= accuracy <= 1):
        reader.fail(f"{where}.accuracy", f"must be a number between 0 and 1, found {accuracy!r}")
    batches = tuple(
        _batch(reader, b, f"{where}.batches[{i}]") for i, b in enumerate(reader.items(item, "batches", where))
    )
    if not batches:
        reader.fail(f"{where}.batches", "lists no batch size")
    sizes = [b.batch_size for b in batches]
    if sizes != sorted(set(sizes)):
        reader.fail(f"{where}.batches", f"batch sizes must grow and not repeat: {sizes}")
    return Variant(name, batches, item.get("model_uri"), None if accuracy is None else float(accuracy))


def _batch(reader: _Reader, data: Any, where: str) -> BatchProfile:
    item = reader.mapping(data, where)
    size = item.get("batch_size")
    if not isinstance(size, int) or size < 1:
        reader.fail(f"{where}.batch_size", f"must be a whole number >= 1, found {size!r}")
    quantiles = item.get("service_ms")
    if not isinstance(quantiles, list) or len(quantiles) != QUANTILES:
        reader.fail(f"{where}.service_ms", f"must list {QUANTILES} quantiles (probabilities 0, 0.01, ..., 1)")
    values = tuple(reader.positive(x, f"{where}.service_ms") for x in quantiles)
    if any(b < a for a, b in itertools.pairwise(values)):
        reader.fail(f"{where}.service_ms", "quantiles must not decrease")
    rate = item.get("max_rate_under_slo")
    load = tuple(LoadPoint(**point) for point in item.get("load") or [])
    return BatchProfile(size, values, load, None if rate is None else float(rate))


@dataclass(frozen=True)
class _Reader:
    source: str

    def fail(self, where: str, message: str) -> NoReturn:
        place = f"{self.source}: {where}" if where else self.source
        raise ProfileError(f"{place}: {message}")

    def mapping(self, data: Any, where: str) -> dict[str, Any]:
        if not isinstance(data, dict):
            self.fail(where, "must be a JSON object")
        return data

    def items(self, data: dict[str, Any], key: str, where: str = "") -> list[Any]:
        value = data.get(key)
        if not isinstance(value, list):
            self.fail(f"{where}.{key}" if where else key, "must be a list")
        return value

    def positive(self, value: Any, where: str) -> float:
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
            self.fail(where, f"must be a positive number, found {value!r}")
        return float(value)
