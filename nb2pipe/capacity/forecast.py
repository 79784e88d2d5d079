"""Load forecasts for capacity planning: the peak request rate of each coming interval.

Two forms, both fitted on a history of per-second rates:

- **online** (what the planner does while serving): the forecast for interval ``k`` is made
  ``lead_s`` seconds before it starts (a replica needs its cold start to be ready), from the
  rates seen until then: ``recent peak x headroom(phase)``. The recent peak is the highest
  rate in the last ``window_s`` seconds (at least a floor: outages in a trace end at the
  usual level, not at zero); the headroom is a high quantile of ``actual peak / recent
  peak`` seen in the history at the same phase of a period (none, 30 minutes, 1 hour,
  1 day). A period lets the headroom rise only where bursts recur (this trace's bursts
  start at :02/:05 and :32/:35), instead of everywhere.
- **day-ahead** (``nb2pipe plan`` past the end of the trace): each interval of the next day
  gets the ``coverage`` quantile of the same interval's peak on the history's days, times a
  headroom fitted by leaving the last day out.

Candidates are chosen by numbers, not taste: fitted on the first part of the history,
checked on its last days, and the cheapest (lowest mean forecast) whose forecasts fall
short of at most a budget of the requests wins; :func:`fit_online` returns every
candidate's figures.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from nb2pipe.capacity.trace import DAY_S, interval_peaks
from nb2pipe.errors import Nb2PipeError

WINDOWS_S = (30, 60, 120, 300, 600)
PERIODS_S = (0, 1800, 3600, DAY_S)  # 0: one headroom for every interval
QUANTILES = (0.8, 0.9, 0.95, 0.99, 0.995, 0.999)
STATISTICS = ("peak", "mean")
#: the quantiles whose best candidates are simulated before one is chosen
SHORTLIST_QUANTILES = (0.9, 0.95, 0.99)
#: forecasts never go below this (requests/s): an idle service still keeps a replica
FLOOR_RPS = 1.0
#: the recent level counts as at least this quantile of its own busy values in the history
FLOOR_QUANTILE = 0.05


@dataclass(frozen=True)
class OnlineForecaster:
    interval_s: int
    lead_s: int
    window_s: int
    period_s: int
    #: headroom factor by phase (one entry when period_s is 0)
    headroom: tuple[float, ...]
    #: the recent peak is read as at least this (requests/s): after an outage in the trace
    #: (runs of zero seconds) the load comes back at its usual level, not from zero
    floor_rps: float = FLOOR_RPS
    quantile: float = 0.99
    #: what the recent window is summed up by: its peak or its mean rate
    statistic: str = "peak"

    def predict(self, rates: np.ndarray, first: int, count: int) -> np.ndarray:
        """Forecast peaks of intervals ``first .. first+count-1`` (interval k starts at
        second ``k * interval_s`` of ``rates``), each from the rates before its decision time."""
        recent = recent_levels(rates, self.interval_s, self.lead_s, self.window_s, first, count, self.statistic)
        return np.maximum(recent, self.floor_rps) * self._factors(first, count)

    def _factors(self, first: int, count: int) -> np.ndarray:
        if self.period_s == 0:
            return np.full(count, self.headroom[0])
        return np.asarray(self.headroom)[_phases(self.interval_s, self.period_s, first, count)]

    def describe(self) -> dict[str, object]:
        return {
            "method": "online",
            "interval_s": self.interval_s,
            "lead_s": self.lead_s,
            "statistic": self.statistic,
            "window_s": self.window_s,
            "period_s": self.period_s,
            "quantile": self.quantile,
            "floor_rps": round(self.floor_rps, 2),
            "headroom_min": round(min(self.headroom), 3),
            "headroom_max": round(max(self.headroom), 3),
        }


@dataclass(frozen=True)
class Candidate:
    """One forecaster's figures: fitted on the history's first days, scored on its last ones."""

    window_s: int
    period_s: int
    quantile: float
    statistic: str
    #: share of held-out requests above the forecast (what would queue: a proxy for violations)
    missed: float
    coverage: float  # share of held-out intervals whose actual peak was <= the forecast
    mean_forecast: float  # mean forecast (requests/s): what capacity costs
    mean_actual: float


def recent_peaks(rates: np.ndarray, interval_s: int, lead_s: int, window_s: int, first: int, count: int) -> np.ndarray:
    """Highest rate in the ``window_s`` seconds before each interval's decision time."""
    return recent_levels(rates, interval_s, lead_s, window_s, first, count, "peak")


def recent_levels(
    rates: np.ndarray, interval_s: int, lead_s: int, window_s: int, first: int, count: int, statistic: str
) -> np.ndarray:
    """Peak or mean rate in the ``window_s`` seconds before each interval's decision time."""
    if statistic not in STATISTICS:
        raise Nb2PipeError(f"recent load statistic {statistic!r} is not one of {', '.join(STATISTICS)}")
    ends = (np.arange(first, first + count) * interval_s - lead_s).clip(0, rates.size)
    # zeros before the trace: an interval at its very start has seen no load yet
    padded = np.concatenate([np.zeros(window_s), rates])
    windows = np.lib.stride_tricks.sliding_window_view(padded, window_s)[ends]
    return windows.max(axis=1) if statistic == "peak" else windows.mean(axis=1)


def fit_online(
    history: np.ndarray,
    interval_s: int,
    lead_s: int,
    miss_budget: float = 0.002,
    holdout_days: int = 2,
    windows: tuple[int, ...] = WINDOWS_S,
    periods: tuple[int, ...] = PERIODS_S,
    quantiles: tuple[float, ...] = QUANTILES,
    statistics: tuple[str, ...] = STATISTICS,
) -> tuple[OnlineForecaster, list[Candidate]]:
    """Score every candidate on held-out days (fitted on the days before them); return the
    cheapest whose forecasts miss at most ``miss_budget`` of the requests, refitted on all of
    ``history``, and every candidate's figures."""
    if not 0 < miss_budget < 0.5:
        raise Nb2PipeError(f"forecast miss budget {miss_budget} must be between 0 and 0.5 (e.g. 0.002)")
    days = history.size // DAY_S
    if days < holdout_days + 1:
        raise Nb2PipeError(
            f"the history has {history.size / DAY_S:.2f} days; fitting a forecast needs at least {holdout_days + 1}"
        )
    split = (days - holdout_days) * DAY_S // interval_s  # the first held-out interval
    total = history.size // interval_s
    actual = interval_peaks(history[: total * interval_s], interval_s)
    held = actual[split:]
    candidates: list[Candidate] = []
    for statistic in statistics:
        for window in windows:
            levels = recent_levels(history, interval_s, lead_s, window, 0, total, statistic)
            floor = _floor(levels[:split])
            recent = np.maximum(levels, floor)
            for period in periods:
                if period and (period % interval_s or period > split * interval_s):
                    continue
                for quantile in quantiles:
                    headroom = _headroom(actual[:split], recent[:split], interval_s, period, quantile)
                    trial = OnlineForecaster(interval_s, lead_s, window, period, headroom, floor, quantile, statistic)
                    forecast = recent[split:] * trial._factors(split, total - split)
                    missed = float(np.maximum(held - forecast, 0).sum() / max(held.sum(), 1.0))
                    coverage = float(np.mean(held <= forecast))
                    candidates.append(
                        Candidate(
                            window,
                            period,
                            quantile,
                            statistic,
                            missed,
                            coverage,
                            float(forecast.mean()),
                            float(held.mean()),
                        )
                    )
    good = [c for c in candidates if c.missed <= miss_budget]
    if good:
        best = min(good, key=lambda c: (c.mean_forecast, c.period_s, c.window_s))
    else:
        best = min(candidates, key=lambda c: (c.missed, c.mean_forecast))
    return refit(history, interval_s, lead_s, best), candidates


def refit(history: np.ndarray, interval_s: int, lead_s: int, candidate: Candidate) -> OnlineForecaster:
    """The candidate's forecaster with its floor and headroom fitted on all of ``history``."""
    total = history.size // interval_s
    actual = interval_peaks(history[: total * interval_s], interval_s)
    levels = recent_levels(history, interval_s, lead_s, candidate.window_s, 0, total, candidate.statistic)
    floor = _floor(levels)
    recent = np.maximum(levels, floor)
    headroom = _headroom(actual, recent, interval_s, candidate.period_s, candidate.quantile)
    return OnlineForecaster(
        interval_s,
        lead_s,
        candidate.window_s,
        candidate.period_s,
        headroom,
        floor,
        candidate.quantile,
        candidate.statistic,
    )


def shortlist(candidates: list[Candidate], quantiles: tuple[float, ...] = SHORTLIST_QUANTILES) -> list[Candidate]:
    """Per recent-load statistic and headroom quantile, the window and period whose forecasts
    missed the fewest held-out requests (the cheaper on a tie)."""
    chosen = []
    for statistic in sorted({c.statistic for c in candidates}):
        for quantile in quantiles:
            same = [c for c in candidates if c.statistic == statistic and c.quantile == quantile]
            if same:
                chosen.append(min(same, key=lambda c: (c.missed, c.mean_forecast)))
    return chosen


def _floor(levels: np.ndarray) -> float:
    busy = levels[levels > 0]
    return max(FLOOR_RPS, float(np.quantile(busy, FLOOR_QUANTILE))) if busy.size else FLOOR_RPS


def _headroom(
    actual: np.ndarray, recent: np.ndarray, interval_s: int, period_s: int, quantile: float
) -> tuple[float, ...]:
    ratio = actual / recent
    if period_s == 0:
        return (max(1.0, float(np.quantile(ratio, quantile))),)
    # interval k is at phase k mod slots: one column per phase, NaN where the history ends
    slots = period_s // interval_s
    if ratio.size % slots == 0 and ratio.size:  # whole periods (whole days of history): no gaps
        factors = np.quantile(ratio.reshape(-1, slots), quantile, axis=0)
        return tuple(float(f) if f > 1.0 else 1.0 for f in factors)
    table = np.full(-(-ratio.size // slots) * slots, np.nan)
    table[: ratio.size] = ratio
    seen = table.reshape(-1, slots)
    with warnings.catch_warnings():  # a phase the history never reached is all NaN: factor 1
        warnings.simplefilter("ignore", RuntimeWarning)
        factors = np.nanquantile(seen, quantile, axis=0)
    return tuple(float(f) if np.isfinite(f) and f > 1.0 else 1.0 for f in factors)


def _phases(interval_s: int, period_s: int, first: int, count: int) -> np.ndarray:
    return (np.arange(first, first + count) * interval_s % period_s) // interval_s


@dataclass(frozen=True)
class DayAheadForecaster:
    """The same interval on earlier days: their ``coverage`` quantile, times ``headroom``."""

    interval_s: int
    coverage: float
    headroom: float
    envelope: tuple[float, ...]  # one forecast per interval of the day

    def predict_day(self) -> np.ndarray:
        return np.maximum(np.asarray(self.envelope) * self.headroom, FLOOR_RPS)

    def describe(self) -> dict[str, object]:
        return {
            "method": "day-ahead",
            "interval_s": self.interval_s,
            "coverage": self.coverage,
            "headroom": round(self.headroom, 3),
        }


def fit_day_ahead(history: np.ndarray, interval_s: int, coverage: float = 0.99) -> DayAheadForecaster:
    days = history.size // DAY_S
    if days < 2:
        raise Nb2PipeError(f"a day-ahead forecast needs at least 2 whole days of history; the trace has {days}")
    if DAY_S % interval_s:
        raise Nb2PipeError(f"the interval ({interval_s} s) must divide a day (86400 s) for a day-ahead plan")
    peaks = interval_peaks(history[: days * DAY_S], interval_s).reshape(days, DAY_S // interval_s)
    # leave the last day out: the headroom that would have covered it
    envelope = np.quantile(peaks[:-1], coverage, axis=0)
    ratio = peaks[-1] / np.maximum(envelope, FLOOR_RPS)
    headroom = max(1.0, float(np.quantile(ratio, coverage)))
    return DayAheadForecaster(interval_s, coverage, headroom, tuple(np.quantile(peaks, coverage, axis=0).tolist()))
