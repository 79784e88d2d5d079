"""A trace-driven discrete-event simulator of a pool of model-serving replicas, compiled with numba.

Arrivals form a Poisson process whose rate is constant within each second of ``rates``. Each
request goes to one variant by the traffic split; each variant has one FIFO queue in front of
its replicas and a KServe-style batcher (up to B requests, or whatever waits once the oldest
has waited ``max_wait``). The caller reconfigures the pool between ``advance`` calls: that is
how an autoscaling policy is replayed against a trace.

All state lives in plain numpy arrays handed to ``@njit`` functions (cached on disk), so the
Python wrapper stays thin: ``advance`` is called every few simulated seconds for weeks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nb2pipe.capacity.engine_core import (
    _B,
    _CLOCK,
    _COST,
    _CUM,
    _EMIN,
    _HN,
    _KIND,
    _MASK64,
    _MAXQ,
    _NBINS,
    _NREQ,
    _NSLOT,
    _NVIOL,
    _QHEAD,
    _QLEN,
    _SERVED,
    _SLO,
    _SUB,
    _SUM_LAT,
    _SUM_WAIT,
    _WAIT,
    _WARMUP,
    MAX_VARIANTS,
    QUANTILES,
    _Config,
    _draw_arrival,
    _resize,
    _run,
    _State,
)
from nb2pipe.errors import Nb2PipeError


@dataclass(frozen=True, eq=False)
class ServiceTimes:
    """One variant's service-time distribution of a batch, by batch size 1..max_batch (seconds).

    ``kind`` 0 samples ``quantiles_s[k - 1]`` (at probabilities 0, 0.01, ..., 1) by inverse CDF
    with linear interpolation; ``kind`` 1 is exponential with mean ``means_s[k - 1]``.
    """

    kind: int
    quantiles_s: np.ndarray
    means_s: np.ndarray

    def __post_init__(self) -> None:
        if self.kind not in (0, 1):
            raise Nb2PipeError(f"service-time kind must be 0 (empirical) or 1 (exponential), got {self.kind!r}")
        quantiles = np.array(self.quantiles_s, dtype=np.float64)
        means = np.array(self.means_s, dtype=np.float64)
        if quantiles.ndim != 2 or quantiles.shape[1] != QUANTILES or quantiles.shape[0] < 1:
            raise Nb2PipeError(f"quantiles_s must have shape (max_batch, {QUANTILES}), got {quantiles.shape}")
        if means.shape != (quantiles.shape[0],):
            raise Nb2PipeError(f"means_s must have shape ({quantiles.shape[0]},), got {means.shape}")
        if self.kind == 0:
            if not np.isfinite(quantiles).all() or (quantiles < 0).any():
                raise Nb2PipeError("empirical service-time quantiles must be finite and >= 0 seconds")
            if (np.diff(quantiles, axis=1) < 0).any():
                raise Nb2PipeError("service-time quantiles must not decrease with the probability")
        elif not np.isfinite(means).all() or (means <= 0).any():
            raise Nb2PipeError("exponential service-time means must be finite and > 0 seconds")
        for array in (quantiles, means):
            array.setflags(write=False)  # frozen means frozen: the simulator copies them anyway
        object.__setattr__(self, "quantiles_s", quantiles)
        object.__setattr__(self, "means_s", means)

    @property
    def max_batch(self) -> int:
        return int(self.quantiles_s.shape[0])

    @staticmethod
    def deterministic(seconds: float, max_batch: int = 1) -> ServiceTimes:
        """Every batch, whatever its size, takes ``seconds``."""
        return ServiceTimes(0, np.full((max_batch, QUANTILES), float(seconds)), np.full(max_batch, float(seconds)))

    @staticmethod
    def exponential(mean_s: float, max_batch: int = 1) -> ServiceTimes:
        """Exponential service with mean ``mean_s`` at every batch size (quantiles filled in for reference)."""
        with np.errstate(divide="ignore"):
            row = -float(mean_s) * np.log1p(-np.linspace(0.0, 1.0, QUANTILES))
        return ServiceTimes(1, np.tile(row, (max_batch, 1)), np.full(max_batch, float(mean_s)))


@dataclass(frozen=True)
class WindowStats:
    """What happened since the previous ``advance`` (tuples have one entry per variant)."""

    start: float
    end: float
    arrivals: tuple[int, ...]
    #: replica-seconds spent serving batches dispatched in the window
    busy_s: tuple[float, ...]
    #: integral of the number of ready replicas over the window
    ready_replica_s: tuple[float, ...]
    #: requests waiting at the window's end
    queued: tuple[int, ...]


@dataclass(frozen=True)
class SimulationResult:
    duration_s: float
    #: requests that arrived after the warm-up; those stranded in a queue with no replica count here too
    requests: int
    #: latency > slo_s, stranded requests included
    violations: int
    cost_replica_s: float
    #: completed requests per variant (after the warm-up, as are the latency figures)
    served: tuple[int, ...]
    mean_latency_s: float
    mean_wait_s: float
    p50_s: float
    p95_s: float
    p99_s: float
    max_queue: int
    reconfigurations: int
    #: requests left queued at the end on a variant that had no replica to drain them
    stranded: int = 0

    @property
    def violation_rate(self) -> float:
        return self.violations / self.requests if self.requests else 0.0


def _percentile(hist: np.ndarray, q: float) -> float:
    total = int(hist.sum())
    if total == 0:
        return math.nan
    cumulative = np.cumsum(hist)
    rank = q * total
    b = int(np.searchsorted(cumulative, rank))
    below = cumulative[b] - hist[b]
    width = 2.0 ** (b // _SUB + _EMIN) / (2 * _SUB)
    low = (0.5 + (b % _SUB) / (2 * _SUB)) * 2.0 ** (b // _SUB + _EMIN)
    return low + width * (rank - below) / hist[b]  # uniform within the bin: error < one bin (0.8 %)


def _seed_streams(seed: int) -> np.ndarray:
    state = seed & _MASK64
    words = []
    for _ in range(8):  # splitmix64, as the xoshiro authors recommend for seeding
        state = (state + 0x9E3779B97F4A7C15) & _MASK64
        z = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        words.append(z ^ (z >> 31))
    return np.array(words, dtype=np.uint64).reshape(2, 4)


def _float(name: str, value: float, minimum: float = 0.0) -> float:
    value = float(value)
    if not math.isfinite(value) or value < minimum:
        raise Nb2PipeError(f"{name} must be a finite number >= {minimum:g}, got {value!r}")
    return value


class PoolSimulation:
    """Replays ``rates`` (requests/s per second) against a pool of replicas per variant."""

    def __init__(
        self,
        rates: np.ndarray,
        services: Sequence[ServiceTimes],
        *,
        slo_s: float,
        cold_start_s: float,
        seed: int = 0,
        max_replicas: int = 4096,
        queue_limit: int = 1 << 24,
    ) -> None:
        rates = np.ascontiguousarray(rates, dtype=np.float64)
        if rates.ndim != 1 or not np.isfinite(rates).all() or (rates < 0).any():
            raise Nb2PipeError("rates must be a 1-D array of finite request rates >= 0 per second")
        self._services = tuple(services)
        if not 1 <= len(self._services) <= MAX_VARIANTS:
            raise Nb2PipeError(f"between 1 and {MAX_VARIANTS} variants are simulated, got {len(self._services)}")
        if any(not isinstance(s, ServiceTimes) for s in self._services):
            raise Nb2PipeError("services must be ServiceTimes")
        if max_replicas < 1 or queue_limit < 1:
            raise Nb2PipeError("max_replicas and queue_limit must be at least 1")
        self._cold = _float("cold_start_s", cold_start_s)
        self._max_replicas, self._queue_limit = int(max_replicas), int(queue_limit)
        nv = self._nv = len(self._services)
        largest = max(s.max_batch for s in self._services)
        self._s = s = _State(
            fs=np.zeros(8),
            ist=np.zeros(5, np.int64),
            rng=_seed_streams(int(seed)),
            rates=rates,
            vf=np.zeros((4, nv)),
            vi=np.zeros((8, nv), np.int64),
            qbuf=np.zeros((nv, 1024)),
            hkey=np.zeros((nv, self._max_replicas)),
            hslot=np.zeros((nv, self._max_replicas), np.int64),
            sl=np.zeros((4, nv, 64)),
            svc_q=np.zeros((nv, largest, QUANTILES)),
            svc_m=np.ones((nv, largest)),
            hist=np.zeros(_NBINS, np.int64),
            win_i=np.zeros((2, nv), np.int64),
            win_f=np.zeros((2, nv)),
        )
        s.fs[_SLO] = _float("slo_s", slo_s)
        for v, service in enumerate(self._services):
            s.svc_q[v, : service.max_batch] = np.where(np.isfinite(service.quantiles_s), service.quantiles_s, 0.0)
            s.svc_m[v, : service.max_batch] = service.means_s
            s.vi[_KIND, v] = service.kind
        self._now = self._window_start = 0.0
        self._config: _Config | None = None
        self._reconfigurations = 0
        self._started = self._finished = False
        _draw_arrival(s)

    def _simulate(self, until: float, arrivals: bool = True, close: bool = False) -> None:
        while code := _run(self._s, until, arrivals, close, self._window_start):
            self._grow_queues(code - 1)
        if until < math.inf:
            self._now = until

    def _grow_queues(self, variant: int) -> None:
        vi, qbuf = self._s.vi, self._s.qbuf
        cap = qbuf.shape[1]
        if cap * 2 > self._queue_limit:
            raise Nb2PipeError(
                f"variant {variant}'s queue passed {cap} waiting requests (queue_limit {self._queue_limit}): "
                "the pool is hopelessly overloaded"
            )
        grown = np.zeros((self._nv, cap * 2))
        for v in range(self._nv):  # unroll each ring buffer so its head is at 0
            grown[v, : vi[_QLEN, v]] = np.roll(qbuf[v], -vi[_QHEAD, v])[: vi[_QLEN, v]]
            vi[_QHEAD, v] = 0
        self._s = self._s._replace(qbuf=grown)

    def configure(
        self,
        at: float,
        replicas: Sequence[int],
        batch_sizes: Sequence[int],
        max_wait_s: Sequence[float],
        split: Sequence[float],
    ) -> bool:
        """Apply a configuration at time ``at`` (>= the last advance's end). The first call must be
        at 0 and its replicas are ready at once (no cold start): a pool that was already running.
        Returns whether anything changed (the first call counts as no reconfiguration)."""
        if self._finished:
            raise Nb2PipeError("the simulation has finished")
        at = float(at)
        if self._config is None and at != 0.0:
            raise Nb2PipeError(f"the first configure() must be at time 0, got {at!r}")
        if not at >= self._now or not math.isfinite(at):
            raise Nb2PipeError(f"configure() at {at!r} goes back in time: the simulation is at {self._now!r}")
        config = self._validate(replicas, batch_sizes, max_wait_s, split)
        if config == self._config:
            return False
        if at > self._now:
            self._simulate(at)  # what happens before `at` sees the old configuration; the window stays open
        self._s.fs[_CLOCK] = at
        ready_at = at if self._config is None else at + self._cold
        for v, n in enumerate(config[0]):
            if n != self._s.vi[_HN, v]:
                slots = self._s.sl.shape[2]
                if self._s.vi[_NSLOT, v] + n > slots:  # room for the new ones beside those leaving
                    grown = np.zeros((4, self._nv, max(2 * slots, self._s.vi[_NSLOT, v] + n)))
                    grown[:, :, :slots] = self._s.sl
                    self._s = self._s._replace(sl=grown)
                _resize(self._s, v, n, at, ready_at)
        self._s.vi[_B] = config[1]
        self._s.vf[_WAIT] = config[2]
        shares = np.array(config[3]) / sum(config[3])
        cumulative = np.cumsum(shares)
        cumulative[int(np.flatnonzero(shares > 0)[-1]) :] = 1.0  # rounding must never route to a 0 share
        self._s.vf[_CUM] = cumulative
        self._reconfigurations += self._config is not None
        self._config = config
        return True

    def _validate(
        self, replicas: Sequence[int], batch_sizes: Sequence[int], max_wait_s: Sequence[float], split: Sequence[float]
    ) -> _Config:
        if any(len(values) != self._nv for values in (replicas, batch_sizes, max_wait_s, split)):
            raise Nb2PipeError(f"replicas, batch_sizes, max_wait_s and split need one value per variant ({self._nv})")
        counts = tuple(int(n) for n in replicas)
        if any(n < 0 or n > self._max_replicas for n in counts):
            raise Nb2PipeError(f"replica counts must be within 0..{self._max_replicas}, got {counts}")
        batches = tuple(int(b) for b in batch_sizes)
        for v, (b, service) in enumerate(zip(batches, self._services, strict=True)):
            if not 1 <= b <= service.max_batch:
                raise Nb2PipeError(f"variant {v}'s batch size must be within 1..{service.max_batch}, got {b}")
        waits = tuple(_float("max_wait_s", w) for w in max_wait_s)
        shares = tuple(_float("split", s) for s in split)
        if abs(sum(shares) - 1.0) > 1e-6:
            raise Nb2PipeError(f"the traffic split must sum to 1, got {sum(shares)!r} from {shares}")
        return counts, batches, waits, shares

    def warmup(self, seconds: float) -> None:
        """Leave requests arriving before ``seconds`` out of the statistics (call before advancing)."""
        if self._started:
            raise Nb2PipeError("warmup() must be called before the first advance()")
        self._s.fs[_WARMUP] = _float("warm-up", seconds)

    def advance(self, until: float) -> WindowStats:
        """Simulate all arrivals and dispatches with time < ``until``."""
        if self._config is None or self._finished:
            raise Nb2PipeError("advance() needs a configure() first" if self._config is None else "finished")
        until = float(until)
        if not until >= self._now or until == math.inf:
            raise Nb2PipeError(f"advance({until!r}) goes back in time: the simulation is at {self._now!r}")
        self._started = True
        self._simulate(until, close=True)
        start, self._window_start = self._window_start, until
        wi, wf = self._s.win_i, self._s.win_f
        return WindowStats(
            start, until, tuple(wi[0].tolist()), tuple(wf[0].tolist()), tuple(wf[1].tolist()), tuple(wi[1].tolist())
        )

    def finish(self, end: float | None = None) -> SimulationResult:
        """Advance to ``end`` (default ``len(rates)``), then let queued requests drain (no new
        arrivals) so every arrival is counted; cost counts replicas until ``end``."""
        end = float(len(self._s.rates)) if end is None else float(end)
        self.advance(end)
        self._simulate(math.inf, arrivals=False)
        self._finished = True
        s = self._s
        stranded = int(s.vi[_QLEN].sum())  # only a variant left without replicas keeps a queue
        fs, ist = s.fs, s.ist
        completed = int(ist[_NREQ])
        return SimulationResult(
            duration_s=end,
            requests=completed + stranded,
            violations=int(ist[_NVIOL]) + stranded,
            cost_replica_s=float(fs[_COST]),
            served=tuple(s.vi[_SERVED].tolist()),
            mean_latency_s=float(fs[_SUM_LAT]) / completed if completed else math.nan,
            mean_wait_s=float(fs[_SUM_WAIT]) / completed if completed else math.nan,
            p50_s=_percentile(s.hist, 0.50),
            p95_s=_percentile(s.hist, 0.95),
            p99_s=_percentile(s.hist, 0.99),
            max_queue=int(ist[_MAXQ]),
            reconfigurations=self._reconfigurations,
            stranded=stranded,
        )
