"""Bad-input edges of the trace reader and its callers (issue 21, item 5), with a little fuzzing:
every refusal names the file and the line and says how to fix it; what is read but not used (a
partial last day) is said in a warning."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import numpy as np
import pytest

from nb2pipe.capacity.scenario import Choices, scenario_for, spans
from nb2pipe.capacity.trace import (
    DAY_S,
    MAX_RATE_RPS,
    DaySpan,
    TraceError,
    TraceWarning,
    read_trace,
    select_days,
)
from tests.support.capacity_profiles import synthetic_profile

#: a day of small integer rates: what the fuzzing starts from
DAY = [str(v) for v in np.random.default_rng(7).integers(0, 50, DAY_S)]


def write(tmp_path: Path, lines: list[str], name: str = "trace.txt", end: str = "\n") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + end, encoding="utf-8")
    return path


def refusal(path: Path) -> str:
    with pytest.raises(TraceError) as caught:
        read_trace(path)
    message = str(caught.value)
    assert str(path) in message
    return message


def test_a_trace_one_second_short_of_a_day_says_so(tmp_path: Path) -> None:
    message = refusal(write(tmp_path, DAY[:-1]))
    assert "86,399 lines" in message and "1 s short of one day" in message
    assert "whole days of 86,400 lines" in message
    assert "0 days" not in message


def test_a_blank_line_is_an_error_naming_it(tmp_path: Path) -> None:
    # a blank line read as 0 would invent an outage, skipped it would shift every later second
    lines = [*DAY[:99], "", *DAY[99:]]
    message = refusal(write(tmp_path, lines))
    assert "line 100 is blank" in message
    assert "write 0 for a second without requests, or delete the line" in message


def test_blank_lines_at_the_end_and_windows_line_ends_are_read(tmp_path: Path) -> None:
    path = tmp_path / "crlf.txt"
    path.write_bytes(("\ufeff" + "\r\n".join(DAY) + "\r\n\r\n  \n").encode("utf-8"))
    rates = read_trace(path)
    assert rates.size == DAY_S and rates[:3].tolist() == [float(v) for v in DAY[:3]]


def test_a_form_feed_does_not_split_a_line(tmp_path: Path) -> None:
    # str.splitlines would make two lines of it and every later line number would be off by one
    message = refusal(write(tmp_path, [*DAY[:9], "4\x0c5", *DAY[10:]]))
    assert "line 10:" in message


def test_a_partial_last_day_is_read_and_said_not_to_be_used(tmp_path: Path) -> None:
    path = write(tmp_path, DAY + DAY + DAY[:500])
    with pytest.warns(TraceWarning) as caught:
        rates = read_trace(path)
    message = str(caught[0].message)
    assert str(path) in message
    assert "the last 500 lines (172,801-173,300) are a partial day 3 and are not used" in message
    assert "2 whole days" in message
    # the default days are the whole ones: the last whole day simulated, the one before fitted
    assert spans(rates, Choices(slo_ms=100.0), str(path)) == (DaySpan(1, 1), DaySpan(2, 2))
    with pytest.raises(TraceError, match=r"has 2 whole days \(173,300 s\); days 3 are not all in it"):
        select_days(rates, DaySpan(3, 3), str(path))


def test_whole_days_read_without_a_warning(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_trace(write(tmp_path, DAY + DAY)).size == 2 * DAY_S


@pytest.mark.parametrize("value", ["1e12", "10000001", "1e308"])
def test_an_implausible_rate_names_its_line_and_value(tmp_path: Path, value: str) -> None:
    message = refusal(write(tmp_path, [*DAY[:41], value, *DAY[42:]]))
    assert f"line 42: {value!r} requests in one second is over 10,000,000" in message
    assert "check the line and the units" in message
    assert "combinations" not in message


def test_the_bound_itself_is_a_rate(tmp_path: Path) -> None:
    rates = read_trace(write(tmp_path, [f"{MAX_RATE_RPS:.0f}", *DAY[1:]]))
    assert rates[0] == MAX_RATE_RPS


def test_a_scaled_peak_the_search_cannot_serve_names_its_line(tmp_path: Path) -> None:
    lines = DAY + DAY
    lines[DAY_S + 1233] = "5000"  # day 2, line 87,634
    rates = read_trace(write(tmp_path, lines))
    choices = Choices(slo_ms=100.0, days=DaySpan(2, 2), fit_days=DaySpan(1, 1), scale=1000.0)
    with pytest.raises(TraceError) as caught:
        scenario_for(synthetic_profile(), rates, choices, "trace.txt")
    message = str(caught.value)
    assert message.startswith("trace.txt line 87,634 (day 2): 5,000 requests/s x --scale 1000 = 5e+06")
    assert "cannot be planned" in message and "lower --scale" in message


# --- fuzzing: random truncation and junk lines ------------------------------------------------

JUNK = ["", "   ", "abc", "1 2", "1,5", "nan", "inf", "-1", "-0.5", "1e12", "0x1f", "\x00", "12abc", "--"]


@pytest.mark.parametrize("seed", range(12))
def test_a_junk_line_anywhere_is_reported_at_that_line(tmp_path: Path, seed: int) -> None:
    chance = random.Random(seed)
    junk = chance.choice(JUNK)
    line = chance.randrange(1, DAY_S)  # not the last line: blank lines at the end are let pass
    lines = [*DAY[: line - 1], junk, *DAY[line - 1 :]]
    message = refusal(write(tmp_path, lines))
    assert f"line {line}" in message, (junk, message)


@pytest.mark.parametrize("seed", range(12))
def test_a_randomly_truncated_trace_reads_its_whole_days_or_says_why_not(tmp_path: Path, seed: int) -> None:
    chance = random.Random(seed)
    text = "\n".join(DAY + DAY[:3000]) + "\n"
    cut = chance.randrange(len(text) // 2, len(text))
    path = tmp_path / "cut.txt"
    path.write_text(text[:cut], encoding="utf-8")
    kept = text[:cut].rstrip("\n").count("\n") + 1
    if kept < DAY_S:
        assert "short of one day" in refusal(path)
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rates = read_trace(path)
    # the cut may shorten the last number ("42" -> "4"), never shift or drop a second before it
    assert rates.size == kept
    assert rates[: kept - 1].tolist() == [float(v) for v in (DAY + DAY[:3000])[: kept - 1]]
    partial = [w for w in caught if issubclass(w.category, TraceWarning)]
    assert len(partial) == (1 if kept > DAY_S else 0)


@pytest.mark.parametrize("seed", range(4))
def test_random_bytes_are_refused_without_a_traceback(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "noise.bin"
    path.write_bytes(random.Random(seed).randbytes(2000))
    with pytest.raises(TraceError):
        read_trace(path)
