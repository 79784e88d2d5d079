"""The simulator's event loop, compiled by numba: plain numpy arrays in, plain arrays out.

:mod:`nb2pipe.capacity.engine` is the Python side (validation, configuration, results).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np

QUANTILES = 101
MAX_VARIANTS = 4
# scalars in the float state `fs` and the int state `ist`
_CLOCK, _NEXT_ARR, _NEXT_U, _WARMUP, _SLO, _SUM_LAT, _SUM_WAIT, _COST = range(8)
_SEC, _NREQ, _NVIOL, _TOTQ, _MAXQ = range(5)
# rows of the per-variant float state `vf[row, v]` and int state `vi[row, v]`
_WAIT, _CUM, _ND, _BUSY = range(4)
_B, _QHEAD, _QLEN, _HN, _NSLOT, _ARR, _SERVED, _KIND = range(8)
# fields of the replica slots `sl[field, v, slot]`: provisioned, ready, free again, gone (inf: alive)
_PROV, _RDY, _AVAIL, _LEAVE = range(4)
# latency histogram: 128 bins per power of two (bin width < 0.8 %), from 2**-31 s to 2**31 s
_EMIN, _EXPS, _SUB = -30, 62, 128
_NBINS = _EXPS * _SUB
_MASK64 = (1 << 64) - 1
# replicas, batch sizes, max waits, split
_Config = tuple[tuple[int, ...], tuple[int, ...], tuple[float, ...], tuple[float, ...]]


# ---------------------------------------------------------------- numba core


class _State(NamedTuple):
    """Every array of one simulation; numba takes a named tuple of arrays as one argument."""

    fs: np.ndarray  # float scalars (_CLOCK, ...)
    ist: np.ndarray  # int scalars (_SEC, ...)
    rng: np.ndarray  # (2, 4) uint64: the arrival stream and the service stream
    rates: np.ndarray
    vf: np.ndarray  # (4, V) float rows (_WAIT, ...)
    vi: np.ndarray  # (8, V) int rows (_B, ...)
    qbuf: np.ndarray  # (V, 2**k) ring buffers of the arrival times of waiting requests
    hkey: np.ndarray  # (V, max_replicas) min-heap of the times alive replicas are free (or ready)
    hslot: np.ndarray  # their slots
    sl: np.ndarray  # (4, V, slots) replica slots (_PROV, ...), alive and recently gone
    svc_q: np.ndarray  # (V, max_batch, 101) service-time quantiles
    svc_m: np.ndarray  # (V, max_batch) service-time means
    hist: np.ndarray  # latency histogram
    win_i: np.ndarray  # (2, V) window outputs: arrivals, queued
    win_f: np.ndarray  # (2, V) window outputs: busy, ready replica-seconds


@numba.njit(cache=True)
def _uniform(rng: np.ndarray, stream: int) -> float:
    # xoshiro256+ kept in the simulation's own array: numba's global generator would be shared by
    # every simulation in the process, so interleaving two of them would change both results.
    s0, s1, s2, s3 = rng[stream, 0], rng[stream, 1], rng[stream, 2], rng[stream, 3]
    result = s0 + s3
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = (s3 << np.uint64(45)) | (s3 >> np.uint64(19))
    rng[stream, 0], rng[stream, 1], rng[stream, 2], rng[stream, 3] = s0, s1, s2, s3
    return float(result >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@numba.njit(cache=True)
def _draw_arrival(s: _State) -> None:
    # Exponential gaps at the second's rate; a gap that crosses into the next second is dropped
    # and redrawn from the boundary (memorylessness). That is the same law as Poisson(rate)
    # sorted uniform times per second, without a buffer or a sort. Stream 0 is only arrivals, so
    # two policies replayed with one seed see the same requests.
    t = s.fs[_NEXT_ARR]
    sec = s.ist[_SEC]
    while sec < s.rates.shape[0]:
        rate = s.rates[sec]
        if rate > 0.0:
            t += -math.log(1.0 - _uniform(s.rng, 0)) / rate
            if t < sec + 1.0:
                s.fs[_NEXT_ARR] = t
                s.fs[_NEXT_U] = _uniform(s.rng, 0)  # routing draw, applied with the split current then
                s.ist[_SEC] = sec
                return
        sec += 1
        t = float(sec)
    s.fs[_NEXT_ARR] = np.inf
    s.ist[_SEC] = sec


@numba.njit(cache=True)
def _sift_down(hkey: np.ndarray, hslot: np.ndarray, v: int, n: int, pos: int, key: float, slot: int) -> None:
    while True:
        child = 2 * pos + 1
        if child >= n:
            break
        if child + 1 < n and hkey[v, child + 1] < hkey[v, child]:
            child += 1
        if hkey[v, child] >= key:
            break
        hkey[v, pos] = hkey[v, child]
        hslot[v, pos] = hslot[v, child]
        pos = child
    hkey[v, pos] = key
    hslot[v, pos] = slot


@numba.njit(cache=True)
def _rebuild_heap(s: _State, v: int) -> None:
    n = 0
    for i in range(s.vi[_NSLOT, v]):
        if s.sl[_LEAVE, v, i] == np.inf:
            s.hkey[v, n] = s.sl[_AVAIL, v, i]
            s.hslot[v, n] = i
            n += 1
    for pos in range(n // 2 - 1, -1, -1):
        _sift_down(s.hkey, s.hslot, v, n, pos, s.hkey[v, pos], s.hslot[v, pos])
    s.vi[_HN, v] = n


@numba.njit(cache=True)
def _resize(s: _State, v: int, n: int, at: float, ready_at: float) -> None:
    sl = s.sl
    alive = s.vi[_HN, v]
    if n >= alive:
        first = s.vi[_NSLOT, v]
        for i in range(first, first + n - alive):
            sl[_PROV, v, i], sl[_RDY, v, i], sl[_AVAIL, v, i], sl[_LEAVE, v, i] = at, ready_at, ready_at, np.inf
        s.vi[_NSLOT, v] = first + n - alive
    else:
        # Who goes: replicas still provisioning (latest ready first), then idle, then busy ones
        # (soonest free first), which finish their batch and leave when it ends.
        slots = s.hslot[v, :alive].copy()
        cats = np.empty(alive, np.int64)
        keys = np.empty(alive)
        for j in range(alive):
            i = slots[j]
            if sl[_RDY, v, i] > at:
                cats[j], keys[j] = 0, -sl[_RDY, v, i]
            elif sl[_AVAIL, v, i] <= at:
                cats[j], keys[j] = 1, 0.0
            else:
                cats[j], keys[j] = 2, sl[_AVAIL, v, i]
        order = np.argsort(keys)
        removed = 0
        for cat in range(3):
            for j in order:
                if removed < alive - n and cats[j] == cat:
                    sl[_LEAVE, v, slots[j]] = at if cat < 2 else sl[_AVAIL, v, slots[j]]
                    removed += 1
    _rebuild_heap(s, v)


@numba.njit(cache=True)
def _next_dispatch(s: _State, v: int, clock: float) -> float:
    n = s.vi[_QLEN, v]
    if n == 0 or s.vi[_HN, v] == 0:
        return np.inf
    head = s.vi[_QHEAD, v]
    trigger = s.qbuf[v, head] + s.vf[_WAIT, v]
    if n >= s.vi[_B, v]:
        full = s.qbuf[v, (head + s.vi[_B, v] - 1) & (s.qbuf.shape[1] - 1)]
        trigger = min(trigger, full)
    return max(trigger, s.hkey[v, 0], clock)


@numba.njit(cache=True)
def _dispatch(s: _State, v: int, at: float) -> None:
    vi, qbuf = s.vi, s.qbuf
    k = min(vi[_B, v], vi[_QLEN, v])
    u = _uniform(s.rng, 1)
    if vi[_KIND, v] == 0:
        x = u * 100.0
        i = min(int(x), 99)
        service = s.svc_q[v, k - 1, i] + (x - i) * (s.svc_q[v, k - 1, i + 1] - s.svc_q[v, k - 1, i])
    else:
        service = -s.svc_m[v, k - 1] * math.log(1.0 - u)
    end = at + service
    slot = s.hslot[v, 0]
    s.sl[_AVAIL, v, slot] = end
    _sift_down(s.hkey, s.hslot, v, vi[_HN, v], 0, end, slot)
    s.vf[_BUSY, v] += service
    mask = qbuf.shape[1] - 1
    head = vi[_QHEAD, v]
    warmup, slo = s.fs[_WARMUP], s.fs[_SLO]
    count, late, sum_lat, sum_wait = 0, 0, 0.0, 0.0
    for j in range(k):
        arrived = qbuf[v, (head + j) & mask]
        if arrived >= warmup:
            latency = end - arrived
            count += 1
            sum_lat += latency
            sum_wait += at - arrived
            if latency > slo:
                late += 1
            mantissa, exponent = math.frexp(latency)  # log-spaced bins without a log
            b = (exponent - _EMIN) * _SUB + int((mantissa - 0.5) * (2 * _SUB)) if latency > 0.0 else 0
            s.hist[min(max(b, 0), _NBINS - 1)] += 1
    vi[_QHEAD, v] = (head + k) & mask
    vi[_QLEN, v] -= k
    s.ist[_TOTQ] -= k
    vi[_SERVED, v] += count
    s.ist[_NREQ] += count
    s.ist[_NVIOL] += late
    s.fs[_SUM_LAT] += sum_lat
    s.fs[_SUM_WAIT] += sum_wait


@numba.njit(cache=True)
def _close_window(s: _State, start: float, end: float) -> None:
    vi, sl = s.vi, s.sl
    for v in range(vi.shape[1]):
        ready, kept = 0.0, 0
        for i in range(vi[_NSLOT, v]):
            leave = sl[_LEAVE, v, i]
            s.fs[_COST] += max(0.0, min(leave, end) - max(sl[_PROV, v, i], start))
            ready += max(0.0, min(leave, end) - max(sl[_RDY, v, i], start))
            if leave > end:  # replicas gone by the window's end free their slot
                for field in range(4):
                    sl[field, v, kept] = sl[field, v, i]
                kept += 1
        if kept < vi[_NSLOT, v]:
            vi[_NSLOT, v] = kept
            _rebuild_heap(s, v)
        s.win_i[0, v], s.win_i[1, v] = vi[_ARR, v], vi[_QLEN, v]
        s.win_f[0, v], s.win_f[1, v] = s.vf[_BUSY, v], ready
        vi[_ARR, v], s.vf[_BUSY, v] = 0, 0.0


@numba.njit(cache=True)
def _run(s: _State, until: float, arrivals: bool, close: bool, window_start: float) -> int:
    """Process arrivals and dispatches in time order while they are before ``until``, then close
    the window when asked (one call per ``advance``: each call costs microseconds). Returns 0, or
    1 + v when variant v's queue is full (nothing consumed: grow it and call again)."""
    fs, vf, vi, qbuf = s.fs, s.vf, s.vi, s.qbuf
    nv = vi.shape[1]
    cap = qbuf.shape[1]
    clock = fs[_CLOCK]
    for v in range(nv):  # the configuration may have changed since the last call
        vf[_ND, v] = _next_dispatch(s, v, clock)
    while True:
        best, bv = np.inf, -1
        for v in range(nv):
            if vf[_ND, v] < best:
                best, bv = vf[_ND, v], v
        arrival = fs[_NEXT_ARR] if arrivals else np.inf
        if best <= arrival:
            if best >= until or bv < 0:
                break
            clock = best
            _dispatch(s, bv, best)
            vf[_ND, bv] = _next_dispatch(s, bv, clock)
        else:
            if arrival >= until:
                break
            v = 0
            while v < nv - 1 and fs[_NEXT_U] >= vf[_CUM, v]:
                v += 1
            n = vi[_QLEN, v]
            if n == cap:
                fs[_CLOCK] = clock
                return 1 + v
            qbuf[v, (vi[_QHEAD, v] + n) & (cap - 1)] = arrival
            vi[_QLEN, v] = n + 1
            vi[_ARR, v] += 1
            s.ist[_TOTQ] += 1
            s.ist[_MAXQ] = max(s.ist[_MAXQ], s.ist[_TOTQ])
            clock = arrival
            _draw_arrival(s)
            vf[_ND, v] = _next_dispatch(s, v, clock)
    fs[_CLOCK] = until if until < np.inf else clock
    if close:
        _close_window(s, window_start, until)
    return 0
