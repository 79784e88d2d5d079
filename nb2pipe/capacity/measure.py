"""Measuring a served model's latency profile: what ``nb2pipe profile`` runs.

Each variant is served alone (``nb2pipe serve`` in a process of its own on 127.0.0.1), measured,
and stopped by PID before the next starts, so variants never share the cores. Requests use
KServe's v1 protocol (``POST /v1/models/NAME:predict`` with ``{"instances": [...]}``) over
keep-alive connections. Per batch size: the service time with one client (no queueing) as 101
quantiles, then closed-loop load points, ``c`` clients sending back to back.

The measurement itself (:func:`measure_endpoint`, :func:`measure_load`) takes any URL. The other
parts live beside it: the models and their rows in :mod:`~nb2pipe.capacity.targets` and
:mod:`~nb2pipe.capacity.request_rows`, starting and stopping servers in
:mod:`~nb2pipe.capacity.serving`; their names stay importable from here. mlflow is imported
inside functions.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import os
import platform
import re
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy

from nb2pipe.capacity.measure_error import MeasureError
from nb2pipe.capacity.profile import QUANTILES, BatchProfile, LoadPoint, Profile, Variant
from nb2pipe.capacity.request_rows import MAX_BODIES, MAX_INPUT_ROWS, read_input, request_bodies, request_rows
from nb2pipe.capacity.serving import HOST, serving
from nb2pipe.capacity.targets import Target, prepare_target, run_accuracy
from nb2pipe.version import __version__

# public names, those of the parts split off included: callers import them from here
__all__ = [
    "CALL_TIMEOUT_S",
    "CLIENTS",
    "DEFAULT_BATCH_SIZES",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_REQUESTS",
    "DEFAULT_WARMUP",
    "HOST",
    "MAX_BODIES",
    "MAX_INPUT_ROWS",
    "READY_SECONDS",
    "MeasureError",
    "MeasureOptions",
    "Progress",
    "Target",
    "answered",
    "measure_endpoint",
    "measure_load",
    "measure_profile",
    "measure_service",
    "predict_path",
    "prepare_target",
    "read_input",
    "request_bodies",
    "request_rows",
    "run_accuracy",
    "serving",
]

DEFAULT_BATCH_SIZES = (1, 2, 4, 8, 16)
DEFAULT_CONCURRENCY = (1, 4)
DEFAULT_REQUESTS = 200
DEFAULT_WARMUP = 20
READY_SECONDS = 120.0
CALL_TIMEOUT_S = 60.0
# Load clients are threads of this process, each with its own keep-alive connection. Measured
# on a 2-core machine against `nb2pipe serve` (breast-cancer model, 4 clients, 2000 calls, 3
# alternating runs): threads 521 rows/s vs forkserver processes 502 at batch 1, 3680 vs 3580 at
# batch 8, p50 within 0.5 ms: no worse, since a client mostly waits on its socket (GIL released)
# and extra processes would only compete with the server for the same cores.
CLIENTS = "threads"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_JSON_HEADERS = {"Content-Type": "application/json"}

Progress = Callable[[str], None]


@dataclass(frozen=True)
class MeasureOptions:
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    concurrency: tuple[int, ...] = DEFAULT_CONCURRENCY
    #: batch calls per measurement point (the single-client run and each load point)
    requests: int = DEFAULT_REQUESTS
    #: calls before each batch size's single-client run, not timed
    warmup: int = DEFAULT_WARMUP
    #: rows to send (CSV, parquet, or a JSON list of rows); default: each model's training data
    input_path: str | None = None
    #: nb2pipe's local store, whose tracking URI is used when MLFLOW_TRACKING_URI is unset
    store: str | Path | None = None
    #: the run metric read as a variant's accuracy when none is given
    accuracy_metric: str = "accuracy"
    ready_seconds: float = READY_SECONDS

    def check(self) -> None:
        for option, values in (("--batch-sizes", self.batch_sizes), ("--concurrency", self.concurrency)):
            if not values or any(not isinstance(v, int) or v < 1 for v in values):
                raise MeasureError(f"{option} must list whole numbers >= 1, found {list(values)}")
            if list(values) != sorted(set(values)):
                raise MeasureError(f"{option} must grow and not repeat, found {list(values)}")
        if self.requests < 1:
            raise MeasureError(f"--requests must be at least 1, found {self.requests}")
        if self.warmup < 0:
            raise MeasureError(f"--warmup must be 0 or more, found {self.warmup}")


# --- whole profile ---------------------------------------------------------------------------


def measure_profile(targets: Sequence[Target], options: MeasureOptions, progress: Progress | None = None) -> Profile:
    """Serve each target in turn, measure it, stop it; the profile of them all."""

    options.check()
    say = progress or (lambda _: None)
    names = [t.name for t in targets]
    if not targets:
        raise MeasureError("name at least one model to profile")
    if len(set(names)) != len(names):
        raise MeasureError(f"variant names repeat ({', '.join(names)}); name each with NAME=URI")
    for name in names:
        if not _NAME.match(name):
            raise MeasureError(f"variant name {name!r}: use letters, digits, '.', '_' or '-'")
    # every model resolved and its rows found before any is served: a typo fails in seconds
    prepared = [
        prepare_target(target, options.input_path, options.store, options.accuracy_metric) for target in targets
    ]
    started = datetime.now(UTC).isoformat(timespec="seconds")
    # anything else busy on the host slows the server down: kept so a reader can judge the figures
    load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    variants = []
    for item in prepared:
        say(f"{item.target.name}: computed on {item.device}")
        with serving(item.target.name, item.target.model_uri, options.store, options.ready_seconds, say) as url:
            batches = measure_endpoint(url, item.target.name, item.rows, options, say)
        variants.append(Variant(item.target.name, batches, item.target.model_uri, item.accuracy))
    measured = {
        "host": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "nb2pipe_version": __version__,
        "python": platform.python_version(),
        "date": started,
        "load_average_at_start": load,
        "requests_per_point": options.requests,
        "warmup_calls": options.warmup,
        "clients": f"{CLIENTS} in the measuring process, one keep-alive HTTP connection each",
        "server": "nb2pipe serve, one process, 127.0.0.1, variants one at a time",
        "protocol": "KServe v1: POST /v1/models/NAME:predict {instances}",
        "input": options.input_path or "the training data kept with each registered model",
        "row_format": {item.target.name: item.row_format for item in prepared},
        # a PyTorch model is served on the GPU when there is one: its rates are the GPU's
        "devices": {item.target.name: item.device for item in prepared},
    }
    return Profile(tuple(variants), None, measured)


# --- measuring one endpoint ------------------------------------------------------------------


class _Client:
    """One keep-alive connection; a call is timed from sending to the last byte of the answer."""

    def __init__(self, url: str, path: str) -> None:
        parts = urlsplit(url)
        self.host, self.port, self.path = parts.hostname or HOST, parts.port or 80, path
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=CALL_TIMEOUT_S)

    def call(self, body: bytes) -> tuple[float, int, bytes]:
        began = time.perf_counter()
        try:
            self.connection.request("POST", self.path, body=body, headers=_JSON_HEADERS)
            response = self.connection.getresponse()
            data = response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            self.close()  # a broken connection: the next call opens a new one
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=CALL_TIMEOUT_S)
            return time.perf_counter() - began, 0, str(exc).encode()
        return time.perf_counter() - began, status, data

    def close(self) -> None:
        self.connection.close()


def answered(status: int, data: bytes, batch_size: int) -> bool:
    """200 with one prediction per row sent."""
    if status != 200:
        return False
    try:
        predictions = json.loads(data).get("predictions")
    except (ValueError, AttributeError):
        return False
    return isinstance(predictions, list) and len(predictions) == batch_size


def predict_path(name: str) -> str:
    return f"/v1/models/{name}:predict"


def measure_endpoint(
    url: str, name: str, rows: Sequence[Any], options: MeasureOptions, progress: Progress | None = None
) -> tuple[BatchProfile, ...]:
    """Every batch size of ``options`` against the model ``name`` served at ``url``."""
    say = progress or (lambda _: None)
    measured = []
    for size in options.batch_sizes:
        bodies = request_bodies(rows, size)
        service = measure_service(url, name, bodies, size, options.requests, options.warmup)
        load = tuple(measure_load(url, name, bodies, size, c, options.requests) for c in options.concurrency)
        measured.append(BatchProfile(size, service, load))
        rates = ", ".join(f"c={p.concurrency} {p.requests_per_s:.0f} rows/s" for p in load)
        say(f"{name}: batch {size}: p50 {service[50]:.2f} ms, p99 {service[99]:.2f} ms; {rates}")
    return tuple(measured)


def measure_service(
    url: str, name: str, bodies: Sequence[bytes], batch_size: int, calls: int, warmup: int
) -> tuple[float, ...]:
    """One client, one call at a time: the service-time quantiles (ms) at 0, 0.01, ..., 1.
    Every call must be answered: a failed one has no service time to count."""
    client = _Client(url, predict_path(name))
    try:
        seconds, status, data = client.call(bodies[0])
        if not answered(status, data, batch_size):
            raise MeasureError(
                f"{url}{predict_path(name)} answered {status or 'no response'} to a batch of {batch_size} rows: "
                f"{data[:300].decode(errors='replace')}; check that --input holds the model's columns"
            )
        for k in range(warmup):
            client.call(bodies[k % len(bodies)])
        timings = []
        for k in range(calls):
            seconds, status, data = client.call(bodies[k % len(bodies)])
            if not answered(status, data, batch_size):
                raise MeasureError(
                    f"{name}: call {k + 1} of {calls} at batch size {batch_size} failed "
                    f"({status or 'no response'}: {data[:200].decode(errors='replace')}); "
                    "a profile needs every single-client call answered: check the server, then rerun"
                )
            timings.append(seconds * 1000)
    finally:
        client.close()
    quantiles = numpy.quantile(numpy.asarray(timings), numpy.linspace(0, 1, QUANTILES))
    # interpolation rounding must never make a quantile smaller than the one before it
    return tuple(float(q) for q in numpy.maximum.accumulate(quantiles))


def measure_load(
    url: str, name: str, bodies: Sequence[bytes], batch_size: int, concurrency: int, calls: int
) -> LoadPoint:
    """``concurrency`` clients sending back to back until ``calls`` calls have been sent in all.
    Throughput counts answered calls' rows over the time from the common start to the last answer."""
    tickets = itertools.count()  # next() on it is atomic under the GIL: every call is sent once
    start = threading.Barrier(concurrency + 1)
    results: list[tuple[list[float], int]] = [([], 0)] * concurrency
    failures: list[BaseException] = []

    def client(index: int) -> None:
        connection = _Client(url, predict_path(name))
        try:
            connection.call(bodies[index % len(bodies)])  # opens the connection; not counted
            start.wait(timeout=CALL_TIMEOUT_S)
            timings: list[float] = []
            errors = 0
            while (k := next(tickets)) < calls:
                seconds, status, data = connection.call(bodies[k % len(bodies)])
                if answered(status, data, batch_size):
                    timings.append(seconds * 1000)
                else:
                    errors += 1
            results[index] = (timings, errors)
        except BaseException as exc:  # reported by the measuring thread, not lost in this one
            failures.append(exc)
            start.abort()
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    # a client that failed or never connected breaks the barrier: reported below
    with contextlib.suppress(threading.BrokenBarrierError):
        start.wait(timeout=CALL_TIMEOUT_S)
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if failures:
        raise MeasureError(f"{name}: a load client failed at concurrency {concurrency}: {failures[0]}")
    timings = [t for got, _ in results for t in got]
    errors = sum(failed for _, failed in results)
    if not timings:
        raise MeasureError(
            f"{name}: none of {calls} calls at batch size {batch_size}, concurrency {concurrency} was answered"
        )
    values = numpy.asarray(timings)
    p50, p95, p99 = (float(x) for x in numpy.percentile(values, [50, 95, 99]))
    return LoadPoint(
        concurrency=concurrency,
        batches=len(timings),
        errors=errors,
        requests_per_s=batch_size * len(timings) / elapsed,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        mean_ms=float(values.mean()),
    )
