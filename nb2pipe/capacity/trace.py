"""Request-rate traces: one number per line, requests in each second, oldest first."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nb2pipe.errors import Nb2PipeError

DAY_S = 86_400


class TraceError(Nb2PipeError):
    """A trace that cannot be read, or a selection of days it does not have."""


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
    """Requests per second as float64; a bad line is reported with its number."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TraceError(f"{source}: no such trace file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(f"{source}: cannot read it ({exc})") from None
    try:
        rates = np.array(text.split(), dtype=np.float64)
    except ValueError:
        rates = None
    # one number per line: a line holding two would shift every later second
    lines = sum(1 for line in text.splitlines() if line.strip())
    if rates is None or not np.isfinite(rates).all() or (rates < 0).any() or lines != len(rates):
        raise TraceError(f"{source}: {_first_bad_line(text)}")
    if rates.size == 0:
        raise TraceError(f"{source}: the trace is empty; it needs one request rate per line (requests per second)")
    return rates


def _first_bad_line(text: str) -> str:
    for number, line in enumerate(text.splitlines(), 1):
        field = line.strip()
        if not field:  # blank lines are skipped, not read as a rate
            continue
        try:
            value = float(field)
        except ValueError:
            return f"line {number}: {field[:40]!r} is not a request rate; write one number per line (requests/s)"
        if not np.isfinite(value) or value < 0:
            return f"line {number}: {field!r} is not a request rate >= 0"
    return "write one number per line (requests per second)"


def select_days(rates: np.ndarray, span: DaySpan, source: str = "the trace") -> np.ndarray:
    start, end = span.seconds()
    if end > rates.size:
        have = rates.size / DAY_S
        raise TraceError(f"{source} has {have:.2f} days; days {span} are not all in it")
    return rates[start:end]


def interval_peaks(rates: np.ndarray, interval_s: int) -> np.ndarray:
    """The highest per-second rate in each interval (a last partial interval included)."""
    count = -(-rates.size // interval_s)
    padded = np.zeros(count * interval_s)
    padded[: rates.size] = rates
    return padded.reshape(count, interval_s).max(axis=1)
