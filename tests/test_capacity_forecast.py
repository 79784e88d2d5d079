"""Traces and load forecasts: read_trace's errors, day spans, recent peaks against a plain loop,
the online forecast's causality, and both fitted forecasters on the real Twitter trace."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from nb2pipe.capacity.forecast import (
    FLOOR_QUANTILE,
    FLOOR_RPS,
    QUANTILES,
    Candidate,
    OnlineForecaster,
    fit_day_ahead,
    fit_online,
    recent_peaks,
)
from nb2pipe.capacity.trace import DAY_S, DaySpan, TraceError, interval_peaks, read_trace, select_days
from nb2pipe.errors import Nb2PipeError

TRACE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "twitter-trace-days01-14.txt"
INTERVAL_S = 30
LEAD_S = 30
#: fewer periods than the default keep the fit well under a second (a day's period has 2880 phases)
FAST_PERIODS = (0, 1800, 3600)


@pytest.fixture(scope="module")
def trace() -> np.ndarray:
    if not TRACE.is_file():
        pytest.skip(f"{TRACE} is not here")
    return read_trace(TRACE)


# --- read_trace ------------------------------------------------------------------------------


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def trace_error(path: Path) -> str:
    with pytest.raises(TraceError) as caught:
        read_trace(path)
    assert isinstance(caught.value, Nb2PipeError)
    return str(caught.value)


def test_a_word_in_a_trace_is_reported_with_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "words.txt", "12\n7\nbusy\n9\n")
    message = trace_error(path)
    assert str(path) in message
    assert "line 3" in message
    assert "'busy'" in message


def test_a_negative_rate_is_reported_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "negative.txt", "3\n4\n5\n-2\n")
    message = trace_error(path)
    assert str(path) in message
    assert "line 4" in message
    assert "-2" in message and ">= 0" in message


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_an_empty_trace_is_refused(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "empty.txt", text)
    message = trace_error(path)
    assert str(path) in message
    assert "empty" in message


def test_two_numbers_on_one_line_are_refused(tmp_path: Path) -> None:
    # each line is one second: a line holding two would shift every later second
    path = write(tmp_path, "two.txt", "1\n2 3\n4\n")
    message = trace_error(path)
    assert str(path) in message and "line 2" in message


def test_a_blank_line_is_refused_with_its_line_as_it_would_shift_later_seconds(tmp_path: Path) -> None:
    message = trace_error(write(tmp_path, "blank.txt", "1\n\n3\nnan\n"))
    assert "line 2 is blank" in message and "write 0" in message
    # trailing blank lines shift nothing: a whole day followed by them reads as that day
    assert read_trace(write(tmp_path, "tail.txt", "1\n" * DAY_S + "\n \n")).size == DAY_S


def test_a_missing_trace_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.txt"
    message = trace_error(path)
    assert str(path) in message and "no such trace file" in message


def test_a_good_trace_is_read_as_float_rates(tmp_path: Path) -> None:
    rates = read_trace(write(tmp_path, "good.txt", "0\n1.5\n20\n" + "7\n" * (DAY_S - 3)))
    assert rates.dtype == np.float64
    assert rates[:4].tolist() == [0.0, 1.5, 20.0, 7.0] and rates.size == DAY_S


# --- DaySpan and the day selection -----------------------------------------------------------


@pytest.mark.parametrize(("text", "first", "last"), [("8", 8, 8), ("1-7", 1, 7), ("3-3", 3, 3), ("2-14", 2, 14)])
def test_dayspan_parses_a_day_or_a_span(text: str, first: int, last: int) -> None:
    span = DaySpan.parse(text)
    assert (span.first, span.last) == (first, last)
    assert span.seconds() == ((first - 1) * DAY_S, last * DAY_S)
    assert DaySpan.parse(str(span)) == span


@pytest.mark.parametrize("text", ["", "x", "8-", "-3", "0", "0-2", "7-3", "1.5", "1-2-3"])
def test_dayspan_refuses_what_is_not_a_span_of_days(text: str) -> None:
    with pytest.raises(TraceError) as caught:
        DaySpan.parse(text, "--fit-days")
    assert "--fit-days" in str(caught.value)
    assert repr(text) in str(caught.value)


def test_select_days_cuts_whole_days_and_refuses_missing_ones() -> None:
    rates = np.arange(3 * DAY_S, dtype=np.float64)
    day = select_days(rates, DaySpan(2, 2))
    assert day.size == DAY_S and day[0] == DAY_S and day[-1] == 2 * DAY_S - 1
    with pytest.raises(TraceError, match="days 3-4"):
        select_days(rates, DaySpan(3, 4))


def test_interval_peaks_include_a_last_partial_interval() -> None:
    rates = np.array([1.0, 5.0, 2.0, 0.0, 7.0, 3.0, 4.0])
    assert interval_peaks(rates, 3).tolist() == [5.0, 7.0, 4.0]


# --- recent peaks and causality --------------------------------------------------------------


def brute_recent_peaks(
    rates: np.ndarray, interval_s: int, lead_s: int, window_s: int, first: int, count: int
) -> list[float]:
    peaks = []
    for k in range(first, first + count):
        decision = min(max(k * interval_s - lead_s, 0), rates.size)
        seen = rates[max(0, decision - window_s) : decision]
        peaks.append(float(seen.max()) if seen.size else 0.0)
    return peaks


@pytest.mark.parametrize(("interval_s", "lead_s", "window_s"), [(5, 3, 4), (10, 10, 25), (7, 0, 7), (4, 9, 1)])
def test_recent_peaks_match_a_plain_loop(interval_s: int, lead_s: int, window_s: int) -> None:
    rates = np.random.default_rng(interval_s * 100 + window_s).integers(0, 50, size=97).astype(np.float64)
    count = math.ceil(rates.size / interval_s) + 2  # past the end too: the trace is clipped
    found = recent_peaks(rates, interval_s, lead_s, window_s, 0, count)
    assert found.tolist() == brute_recent_peaks(rates, interval_s, lead_s, window_s, 0, count)
    later = recent_peaks(rates, interval_s, lead_s, window_s, 3, 4)
    assert later.tolist() == brute_recent_peaks(rates, interval_s, lead_s, window_s, 3, 4)


@pytest.mark.parametrize("period_s", [0, 60])
def test_online_forecasts_use_only_rates_before_their_decision_time(period_s: int) -> None:
    rng = np.random.default_rng(7)
    rates = rng.uniform(0, 100, size=3000)
    phases = 1 if period_s == 0 else period_s // 10
    forecaster = OnlineForecaster(10, 15, 40, period_s, tuple(rng.uniform(1, 2, size=phases)), floor_rps=3.0)
    count = rates.size // 10
    before = forecaster.predict(rates, 0, count)
    decisions = np.arange(count) * 10 - 15
    for cut in (0, 1, 5, 495, 500, 1234, 1235, 2975, 2999):  # decision times among them (10 k - 15)
        altered = rates.copy()
        altered[cut:] = 1e6  # the future: everything from second `cut` on
        after = forecaster.predict(altered, 0, count)
        decided = decisions <= cut
        assert decided.any()
        np.testing.assert_array_equal(after[decided], before[decided])
        # the alteration is seen by the first interval deciding after it with the cut in its window
        seen = (decisions > cut) & (decisions - 40 <= cut)
        assert (after[seen] > before[seen]).all()


def test_an_idle_start_is_forecast_at_the_floor() -> None:
    forecaster = OnlineForecaster(10, 10, 20, 0, (1.5,), floor_rps=4.0)
    forecast = forecaster.predict(np.zeros(100), 0, 10)
    assert forecast.tolist() == [6.0] * 10


# --- fitted forecasters on the real trace ----------------------------------------------------


def held_out_miss(history: np.ndarray, chosen: Candidate, holdout_days: int) -> tuple[float, float]:
    """The chosen candidate's held-out miss and coverage, recomputed from the module's description:
    fitted on the days before the held-out ones, a recent peak (at least a floor: a low quantile
    of the recent peaks seen then) times the headroom quantile of actual/recent at the same phase."""
    total = history.size // INTERVAL_S
    actual = history[: total * INTERVAL_S].reshape(total, INTERVAL_S).max(axis=1)
    split = (history.size // DAY_S - holdout_days) * DAY_S // INTERVAL_S
    peaks = np.array(brute_recent_peaks(history, INTERVAL_S, LEAD_S, chosen.window_s, 0, total))
    busy = peaks[:split][peaks[:split] > 0]
    floor = max(FLOOR_RPS, float(np.quantile(busy, FLOOR_QUANTILE)))
    recent = np.maximum(peaks, floor)
    ratio = actual / recent
    phases_per_period = chosen.period_s // INTERVAL_S if chosen.period_s else 1
    phase = np.arange(total) % phases_per_period
    headroom = np.ones(phases_per_period)
    for p in range(phases_per_period):
        fitted = ratio[:split][phase[:split] == p]
        headroom[p] = max(1.0, float(np.quantile(fitted, chosen.quantile)))
    forecast = recent[split:] * headroom[phase[split:]]
    held = actual[split:]
    return float(np.maximum(held - forecast, 0).sum() / held.sum()), float(np.mean(held <= forecast))


def test_fit_online_picks_the_cheapest_forecaster_within_the_miss_budget(trace: np.ndarray) -> None:
    budget = 0.002
    history = select_days(trace, DaySpan(1, 5))
    forecaster, candidates = fit_online(history, INTERVAL_S, LEAD_S, budget, periods=FAST_PERIODS, statistics=("peak",))
    assert len(candidates) == 5 * len(FAST_PERIODS) * len(QUANTILES)
    good = [c for c in candidates if c.missed <= budget]
    assert good, "some candidate should meet a 0.2 % budget on this trace"
    chosen = next(
        c
        for c in candidates
        if (c.window_s, c.period_s, c.quantile) == (forecaster.window_s, forecaster.period_s, forecaster.quantile)
    )
    assert chosen in good
    assert chosen.mean_forecast == min(c.mean_forecast for c in good)

    missed, coverage = held_out_miss(history, chosen, holdout_days=2)
    assert missed <= budget
    assert missed == pytest.approx(chosen.missed, rel=1e-9, abs=1e-12)
    assert coverage == pytest.approx(chosen.coverage, abs=1e-12)
    assert len(forecaster.headroom) == (forecaster.period_s // INTERVAL_S if forecaster.period_s else 1)
    assert min(forecaster.headroom) >= 1.0
    assert (forecaster.interval_s, forecaster.lead_s) == (INTERVAL_S, LEAD_S)

    # the refitted forecaster, on day 6 which it never saw
    day6 = 5 * DAY_S // INTERVAL_S
    forecast = forecaster.predict(trace[: 6 * DAY_S], day6, DAY_S // INTERVAL_S)
    peaks = trace[5 * DAY_S : 6 * DAY_S].reshape(-1, INTERVAL_S).max(axis=1)
    assert forecast.shape == peaks.shape == (2880,)
    assert np.mean(peaks <= forecast) >= 0.95
    assert np.maximum(peaks - forecast, 0).sum() / peaks.sum() <= 5 * budget
    # ... without providing for a constant worst case: well below the day's highest peak on average
    assert forecast.mean() < peaks.max()


def test_fit_online_refuses_a_short_history_and_a_bad_budget(trace: np.ndarray) -> None:
    with pytest.raises(Nb2PipeError, match="at least 3"):
        fit_online(trace[: 2 * DAY_S], INTERVAL_S, LEAD_S)
    with pytest.raises(Nb2PipeError, match="miss budget"):
        fit_online(trace[: 3 * DAY_S], INTERVAL_S, LEAD_S, miss_budget=0.7)


def test_fit_day_ahead_gives_one_forecast_per_interval_of_a_day(trace: np.ndarray) -> None:
    history = select_days(trace, DaySpan(1, 7))
    day_ahead = fit_day_ahead(history, INTERVAL_S)
    forecast = day_ahead.predict_day()
    assert forecast.shape == (DAY_S // INTERVAL_S,) == (2880,)
    assert (forecast >= FLOOR_RPS).all()
    assert day_ahead.headroom >= 1.0
    # every interval's forecast is at least the same interval's median peak over the history's days
    peaks = history.reshape(7, 2880, INTERVAL_S).max(axis=2)
    assert (forecast >= np.median(peaks, axis=0)).all()
    # ... and it covers the next day, which it never saw, nearly everywhere
    day8 = select_days(trace, DaySpan(8, 8)).reshape(2880, INTERVAL_S).max(axis=1)
    assert np.mean(day8 <= forecast) >= 0.9


def test_fit_day_ahead_refusals() -> None:
    with pytest.raises(Nb2PipeError, match="at least 2 whole days"):
        fit_day_ahead(np.ones(DAY_S + 5), INTERVAL_S)
    with pytest.raises(Nb2PipeError, match="must divide a day"):
        fit_day_ahead(np.ones(2 * DAY_S), 7)
