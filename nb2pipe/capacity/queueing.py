"""Closed-form mean waiting times of classic queues, to check the simulator and to size pools.

All rates are per second and all times in seconds. Every formula is for a stable queue: an
offered load at or above the number of servers raises :class:`Nb2PipeError`.
"""

from __future__ import annotations

import math

from nb2pipe.errors import Nb2PipeError


def _check_positive(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0.0:
        raise Nb2PipeError(f"{name} must be a positive finite number, got {value!r}")
    return value


def _utilisation(arrival_rate: float, service_s: float, servers: int = 1) -> float:
    rho = _check_positive("arrival_rate", arrival_rate) * _check_positive("service_s", service_s) / servers
    if rho >= 1.0:
        raise Nb2PipeError(f"the queue is unstable: utilisation {rho:.4g} >= 1 (add servers or lower the load)")
    return rho


def md1_mean_wait(arrival_rate: float, service_s: float) -> float:
    """M/D/1 mean time in queue (Pollaczek-Khinchine with a constant service time)."""
    rho = _utilisation(arrival_rate, service_s)
    return rho * service_s / (2.0 * (1.0 - rho))


def mm1_mean_wait(arrival_rate: float, mean_service_s: float) -> float:
    """M/M/1 mean time in queue."""
    rho = _utilisation(arrival_rate, mean_service_s)
    return rho * mean_service_s / (1.0 - rho)


def erlang_c(servers: int, offered_load: float) -> float:
    """Probability that an arrival waits in an M/M/c queue with ``offered_load`` = lambda / mu erlangs."""
    if isinstance(servers, bool) or not isinstance(servers, int) or servers < 1:
        raise Nb2PipeError(f"servers must be a positive integer, got {servers!r}")
    load = _check_positive("offered_load", offered_load)
    if load >= servers:
        raise Nb2PipeError(f"the queue is unstable: offered load {load:.4g} erlangs >= {servers} servers")
    # Erlang B by its recurrence stays within [0, 1], unlike the factorial sums that overflow for large c.
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = load * blocking / (k + load * blocking)
    rho = load / servers
    return blocking / (1.0 - rho * (1.0 - blocking))


def mmc_mean_wait(arrival_rate: float, mean_service_s: float, servers: int) -> float:
    """M/M/c mean time in queue: C(c, a) / (c * mu - lambda)."""
    rate = _check_positive("arrival_rate", arrival_rate)
    mu = 1.0 / _check_positive("mean_service_s", mean_service_s)
    wait_probability = erlang_c(servers, rate / mu)
    return wait_probability / (servers * mu - rate)
