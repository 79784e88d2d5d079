"""Request-rate traces: one number per line, requests in each second, oldest first.

Every line is one second, so the reader refuses what would shift the seconds after it (a
blank line, two numbers on a line) instead of guessing, names the line, and says how to
fix it. Blank lines at the very end shift nothing and are let pass (editors add them).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nb2pipe.errors import Nb2PipeError

DAY_S = 86_400
#: more requests in one second than any public service receives: a unit slip (per day, per
#: hour, bytes) or a corrupt line, and a plan for it would mean millions of replicas
MAX_RATE_RPS = 10_000_000.0


class TraceError(Nb2PipeError):
    """A trace that cannot be read, or a selection of days it does not have."""


class TraceWarning(UserWarning):
    """Something in a trace that is read but not used (a partial last day)."""


@dataclass(frozen=True)
class DaySpan:
    """Days ``first``..``last`` of a trace, counted from 1 as people count them."""

    first: int
    last: int

    @staticmethod
    def parse(text: str, option: str = "--days") -> DaySpan:
        first, dash, last = text.partition("-")
        try:
            span = DaySpan(int(first), int(last) if dash else int(first))
        except ValueError:
            raise TraceError(f"{option} {text!r}: write a day or a span of days, e.g. 8 or 8-14") from None
        if span.first < 1 or span.last < span.first:
            raise TraceError(f"{option} {text!r}: days count from 1 and the span must not run backwards")
        return span

    def seconds(self) -> tuple[int, int]:
        return (self.first - 1) * DAY_S, self.last * DAY_S

    def __str__(self) -> str:
        return f"{self.first}" if self.first == self.last else f"{self.first}-{self.last}"


def read_trace(path: str | Path) -> np.ndarray:
    """Requests per second as float64, at least one whole day; a bad line is reported with
    its number, and a partial last day (which plan and simulate do not use) with a warning."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8-sig")  # a byte-order mark is not part of line 1
    except FileNotFoundError:
        raise TraceError(f"{source}: no such trace file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(f"{source}: cannot read it ({exc})") from None
    # lines end at "\n" only (a "\r" before it is stripped with the spaces), as editors and
    # wc -l count them: str.splitlines would also break at form feeds and other separators
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise TraceError(f"{source}: the trace is empty; it needs one request rate per line (requests per second)")
    try:
        # one conversion for the common case; a blank line or two numbers on a line fail it too
        rates = np.array(lines, dtype=np.float64)
    except ValueError:
        rates = None
    if rates is None or not np.isfinite(rates).all() or (rates < 0).any() or (rates > MAX_RATE_RPS).any():
        raise TraceError(f"{source}: {_first_bad_line(lines)}")
    _check_days(rates.size, source)
    return rates


def _first_bad_line(lines: list[str]) -> str:
    for number, line in enumerate(lines, 1):
        field = line.strip()
        if not field:
            return (
                f"line {number} is blank; every line is one second (requests in that second), so a blank line "
                "would shift every later second: write 0 for a second without requests, or delete the line"
            )
        try:
            value = float(field)
        except ValueError:
            return f"line {number}: {field[:40]!r} is not a request rate; write one number per line (requests/s)"
        if not np.isfinite(value) or value < 0:
            return f"line {number}: {field!r} is not a request rate >= 0"
        if value > MAX_RATE_RPS:
            return (
                f"line {number}: {field!r} requests in one second is over {MAX_RATE_RPS:,.0f}, more than any "
                "service receives; check the line and the units (each line is the requests of one second)"
            )
    return "write one number per line (requests per second)"


def _check_days(seconds: int, source: Path) -> None:
    whole, left = divmod(seconds, DAY_S)
    if whole < 1:
        raise TraceError(
            f"{source}: {seconds:,} lines are {seconds:,} s, {DAY_S - seconds:,} s short of one day; plan and "
            f"simulate need whole days of {DAY_S:,} lines (one per second)"
        )
    if left:
        first = whole * DAY_S + 1
        warnings.warn(
            f"{source}: the last {left:,} lines ({first:,}-{seconds:,}) are a partial day {whole + 1} and are not "
            f"used: plan and simulate work in whole days of {DAY_S:,} s (the trace has {whole} whole days)",
            TraceWarning,
            stacklevel=3,
        )


def whole_days(rates: np.ndarray) -> int:
    return rates.size // DAY_S


def select_days(rates: np.ndarray, span: DaySpan, source: str = "the trace") -> np.ndarray:
    start, end = span.seconds()
    if end > rates.size:
        have = whole_days(rates)
        within = f"choose days within 1-{have}" if have > 1 else "it holds only day 1"
        raise TraceError(f"{source} has {have} whole days ({rates.size:,} s); days {span} are not all in it: {within}")
    return rates[start:end]


def interval_peaks(rates: np.ndarray, interval_s: int) -> np.ndarray:
    """The highest per-second rate in each interval (a last partial interval included)."""
    count = -(-rates.size // interval_s)
    padded = np.zeros(count * interval_s)
    padded[: rates.size] = rates
    return padded.reshape(count, interval_s).max(axis=1)


def busiest_second(rates: np.ndarray, first_line: int = 1) -> tuple[int, float]:
    """(line, rate) of the highest rate; ``first_line`` is the line of ``rates[0]`` in its file."""
    index = int(np.argmax(rates))
    return first_line + index, float(rates[index])
