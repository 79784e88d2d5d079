"""Choosing replicas, variants and the traffic split for one interval (InfAdapter's problem).

maximise   accuracy_value x mean accuracy (in points) - replicas
subject to sum of n_v x rate_v >= load, where rate_v is what one replica of variant v
           carries with p99 <= SLO at its best batch size

For fixed replica counts the best split fills the most accurate variants first (a fractional
knapsack), so an exact search only enumerates replica counts: every count of each variant
but the least accurate one used, which then takes just enough replicas for what is left.
With the two to four variants a profile holds this is small, and answers are cached by
load (rounded up to a whole request per second, never down).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from nb2pipe.capacity.model import VariantOption
from nb2pipe.errors import Nb2PipeError

MAX_REPLICAS = 1000
#: searches larger than this many replica combinations are refused (say which variants to drop)
MAX_COMBINATIONS = 2_000_000


@dataclass(frozen=True)
class Share:
    variant: str
    replicas: int
    batch_size: int
    #: share of the traffic (0..1)
    traffic: float


@dataclass(frozen=True)
class Allocation:
    shares: tuple[Share, ...]
    capacity_rps: float
    #: traffic-weighted accuracy (None when the variants carry no accuracy)
    accuracy: float | None

    @property
    def replicas(self) -> int:
        return sum(s.replicas for s in self.shares)

    def replicas_of(self, variant: str) -> int:
        return next((s.replicas for s in self.shares if s.variant == variant), 0)


@dataclass
class Optimizer:
    options: tuple[VariantOption, ...]
    #: how many replicas one point (0.01) of mean accuracy is worth
    accuracy_value: float = 1.0
    max_replicas: int = MAX_REPLICAS
    _cache: dict[int, Allocation] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.options:
            raise Nb2PipeError("no variant to plan with")
        known = [o.accuracy is not None for o in self.options]
        if len(self.options) > 1 and not all(known):
            missing = ", ".join(o.name for o in self.options if o.accuracy is None)
            raise Nb2PipeError(
                f"with several variants each needs an accuracy; {missing} has none "
                "(profile it with --accuracy, or log an accuracy metric with the model)"
            )
        # most accurate first: the split fills them in this order
        self.options = tuple(sorted(self.options, key=lambda o: (-(o.accuracy or 0.0), o.name)))

    def best(self, load_rps: float) -> Allocation:
        key = max(1, math.ceil(load_rps - 1e-9))
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._search(float(key))
        return found

    def _search(self, load: float) -> Allocation:
        options = self.options
        ranges = [range(0, math.ceil(load / o.rate_per_replica) + 1) for o in options[:-1]]
        size = math.prod(len(r) for r in ranges)
        if size > MAX_COMBINATIONS:
            raise Nb2PipeError(
                f"planning {load:g} requests/s over {len(options)} variants means {size:,} combinations; "
                "plan fewer variants (--variants) or a larger batch size"
            )
        best: tuple[float, int, Allocation] | None = None
        last = options[-1]
        for counts in itertools.product(*ranges):
            carried = sum(n * o.rate_per_replica for n, o in zip(counts, options, strict=False))
            rest = max(0.0, load - carried)
            tail = math.ceil(rest / last.rate_per_replica - 1e-9) if rest > 0 else 0
            replicas = (*counts, tail)
            if sum(replicas) > self.max_replicas:
                continue
            allocation = self._allocate(replicas, load)
            score = self.accuracy_value * 100 * (allocation.accuracy or 0.0) - allocation.replicas
            # ties: fewer replicas, then the order enumerated (most accurate variants first)
            if best is None or (score, -allocation.replicas) > (best[0], -best[1]):
                best = (score, allocation.replicas, allocation)
        if best is None:
            raise Nb2PipeError(
                f"{load:g} requests/s needs more than {self.max_replicas} replicas under this SLO; "
                "lower --scale, leave out the slowest variant (--variants) or raise the SLO"
            )
        return best[2]

    def _allocate(self, replicas: tuple[int, ...], load: float) -> Allocation:
        left = load
        shares = []
        accuracy = 0.0
        capacity = 0.0
        for n, option in zip(replicas, self.options, strict=True):
            carries = n * option.rate_per_replica
            capacity += carries
            taken = min(left, carries)
            left -= taken
            if n:
                shares.append(Share(option.name, n, option.batch_size, taken / load))
                accuracy += (option.accuracy or 0.0) * taken / load
        total = sum(s.traffic for s in shares)
        if total > 0:  # rounding: the split must add up to exactly 1
            shares = [Share(s.variant, s.replicas, s.batch_size, s.traffic / total) for s in shares]
        has_accuracy = all(o.accuracy is not None for o in self.options)
        return Allocation(tuple(shares), capacity, accuracy / total if has_accuracy and total else None)
