"""A real Prometheus on 127.0.0.1 for tests and benchmarks: a thin wrapper over
:mod:`nb2pipe.capacity.local_prometheus` (Debian's ``prometheus`` package; ``make prometheus``)."""

from __future__ import annotations

from nb2pipe.capacity.local_prometheus import (
    DEBIAN_BINARY,
    SCRAPE_INTERVAL_S,
    LocalPrometheus as Prometheus,
    binary,
    running_prometheus,
)

#: where the binary is (Debian's path when it is not installed: the tests' failure message names it)
PROMETHEUS = str(binary() or DEBIAN_BINARY)

__all__ = ["PROMETHEUS", "SCRAPE_INTERVAL_S", "Prometheus", "available", "running_prometheus"]


def available() -> bool:
    return binary() is not None
