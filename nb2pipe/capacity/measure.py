"""Measuring a served model's latency profile: what ``nb2pipe profile`` runs.

Each variant is served alone (``nb2pipe serve`` in a process of its own on 127.0.0.1), measured,
and stopped by PID before the next starts, so variants never share the cores. Requests use
KServe's v1 protocol (``POST /v1/models/NAME:predict`` with ``{"instances": [...]}``) over
keep-alive connections. Per batch size: the service time with one client (no queueing) as 101
quantiles, then closed-loop load points, ``c`` clients sending back to back.

The measurement itself (:func:`measure_endpoint`, :func:`measure_load`) takes any URL, apart
from starting and stopping servers (:func:`serving`). mlflow is imported inside functions.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy

from nb2pipe.capacity.profile import QUANTILES, BatchProfile, LoadPoint, Profile, Variant
from nb2pipe.errors import Nb2PipeError

DEFAULT_BATCH_SIZES = (1, 2, 4, 8, 16)
DEFAULT_CONCURRENCY = (1, 4)
DEFAULT_REQUESTS = 200
DEFAULT_WARMUP = 20
READY_SECONDS = 120.0
HOST = "127.0.0.1"
#: rows kept from the input: enough distinct batches, without holding a large file
MAX_INPUT_ROWS = 4096
#: distinct request bodies per batch size, encoded once so timing excludes JSON encoding
MAX_BODIES = 32
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


class MeasureError(Nb2PipeError):
    """A model could not be served or measured."""


@dataclass(frozen=True)
class Target:
    """One variant to profile: its name, model URI, and accuracy when known."""

    name: str
    model_uri: str
    accuracy: float | None = None


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


@dataclass(frozen=True)
class _Prepared:
    target: Target
    rows: list[Any]
    accuracy: float | None
    row_format: str


# --- whole profile ---------------------------------------------------------------------------


def measure_profile(targets: Sequence[Target], options: MeasureOptions, progress: Progress | None = None) -> Profile:
    """Serve each target in turn, measure it, stop it; the profile of them all."""
    from nb2pipe.version import __version__

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
    prepared = [_prepare(target, options) for target in targets]
    started = datetime.now(UTC).isoformat(timespec="seconds")
    # anything else busy on the host slows the server down: kept so a reader can judge the figures
    load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    variants = []
    for item in prepared:
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
    }
    return Profile(tuple(variants), None, measured)


def _prepare(target: Target, options: MeasureOptions) -> _Prepared:
    from nb2pipe.store.registry import input_columns, resolve_model, tracking_env_kept

    with tracking_env_kept():  # resolving exports the tracking URI; leave the caller's environment alone
        source = resolve_model(target.model_uri, options.store)
        columns, _ = input_columns(source)
        if options.input_path:
            table = read_input(options.input_path)
        else:
            table = _reference_table(target.model_uri, options.store)
        accuracy = target.accuracy
        if accuracy is None:
            accuracy = run_accuracy(target.model_uri, source.name, source.version, options.accuracy_metric)
    rows = request_rows(table, columns, options.input_path or f"the training data of {target.model_uri}")
    return _Prepared(target, rows, accuracy, "objects by column name" if columns else "lists of values")


def _reference_table(model_uri: str, store: str | Path | None) -> Any:
    from nb2pipe.store.reference import load_reference
    from nb2pipe.store.registry import download_reference
    from nb2pipe.store.tables import as_table

    kept = download_reference(model_uri, store)
    if kept is None:
        raise MeasureError(
            f"{model_uri} kept no training data to send as requests; "
            "pass --input FILE (CSV, parquet or a JSON list of rows)"
        )
    return as_table(load_reference(kept), model_uri)


def read_input(path: str | Path) -> Any:
    """The rows of ``--input``: a CSV or parquet file, or JSON (a list of rows, each a list of
    values or an object of column: value, or ``{"instances": [...]}``), as a DataFrame."""
    import pandas

    from nb2pipe.store.tables import generic_names, load_table

    location = Path(path).expanduser()
    if not location.is_file():
        raise MeasureError(f"--input {path}: no such file; give a CSV, parquet or JSON file of rows")
    if location.suffix.lower() != ".json":
        return load_table(location)
    try:
        data = json.loads(location.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MeasureError(f"--input {path}: cannot read it as JSON ({exc})") from None
    if isinstance(data, dict):
        data = data.get("instances", data.get("inputs"))
    if not isinstance(data, list) or not data:
        raise MeasureError(f'--input {path}: expected a JSON list of rows (or {{"instances": [...]}})')
    if all(isinstance(row, dict) for row in data):
        return pandas.DataFrame.from_records(data)
    if all(isinstance(row, list) for row in data):
        widths = {len(row) for row in data}
        if len(widths) != 1:
            raise MeasureError(f"--input {path}: rows have different lengths ({sorted(widths)})")
        return pandas.DataFrame(data, columns=generic_names(widths.pop()))
    raise MeasureError(f"--input {path}: each row must be a list of values or an object of column: value")


def request_rows(table: Any, columns: list[str] | None, where: str) -> list[Any]:
    """Rows as ``nb2pipe serve`` takes them: objects by column name when the model's signature
    names its columns (robust to the input's column order), else lists of values."""
    from nb2pipe.store.tables import generic_names

    table = table.dropna().head(MAX_INPUT_ROWS)  # the server rejects NaN in numeric inputs
    if len(table) == 0:
        raise MeasureError(f"{where} holds no complete row (every row has a missing value); pass --input FILE")
    values = table.astype(object).to_numpy().tolist()  # object dtype: plain Python numbers for JSON
    if not columns:
        return values
    present = [str(c) for c in table.columns]
    if present == generic_names(len(present)) and len(present) == len(columns):
        present = list(columns)  # unnamed rows in the signature's order
    missing = [c for c in columns if c not in present]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise MeasureError(f"{where} lacks columns the model takes: {shown}; pass --input FILE with them")
    index = [present.index(c) for c in columns]
    return [{name: row[i] for name, i in zip(columns, index, strict=True)} for row in values]


def run_accuracy(model_uri: str, name: str | None, version: str | None, metric: str) -> float | None:
    """The ``metric`` logged by the run that produced the model, or None when there is none."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        if name and version:
            run_id = client.get_model_version(name, version).run_id
        elif model_uri.startswith("runs:/"):
            run_id = model_uri.removeprefix("runs:/").split("/", 1)[0]
        else:
            return None
        if not run_id:
            return None
        value = client.get_run(run_id).data.metrics.get(metric)
    except MlflowException:
        return None
    if value is None:
        return None
    if not 0 <= value <= 1:
        raise MeasureError(
            f"{model_uri}: its run's metric {metric!r} is {value:g}, not an accuracy between 0 and 1; "
            "pass --accuracy-metric with another metric or --accuracy A"
        )
    return float(value)


# --- starting and stopping a server ----------------------------------------------------------


@contextlib.contextmanager
def serving(
    name: str, model_uri: str, store: str | Path | None, ready_seconds: float, progress: Progress
) -> Iterator[str]:
    """``nb2pipe serve`` on a free port of 127.0.0.1 until the block ends (yields its URL); then
    stopped by PID, whatever happened."""
    from nb2pipe.lifecycle.endpoints import free_port, wait_until_ready
    from nb2pipe.store.registry import QUIET_MLFLOW, TRACKING_ENV, tracking_uri

    port = free_port(HOST)
    url = f"http://{HOST}:{port}"
    command = [sys.executable, "-m", "nb2pipe", "serve", model_uri, "--name", name, "--host", HOST, "--port", str(port)]
    environment = {**QUIET_MLFLOW, **os.environ, TRACKING_ENV: tracking_uri(store)}
    with tempfile.TemporaryDirectory(prefix="nb2pipe-profile-") as folder:
        log = Path(folder) / "serve.log"
        with log.open("wb") as output:
            # a session of its own: the whole group is signalled, and ^C in a terminal reaches only us
            process = subprocess.Popen(
                command,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=environment,
                start_new_session=True,
            )
        try:
            progress(f"{name}: starting nb2pipe serve {model_uri} on {url} (pid {process.pid})")
            began = time.monotonic()
            wait_until_ready(process, url, name, log, ready_seconds)
            progress(f"{name}: ready after {time.monotonic() - began:.1f} s")
            yield url
        finally:
            stop_server(process)
            progress(f"{name}: server stopped (pid {process.pid})")


def stop_server(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM to the server's process group, up to ``grace`` s to exit, then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # the server, or anything it left in its group
    process.wait()


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


def request_bodies(rows: Sequence[Any], batch_size: int) -> list[bytes]:
    """Distinct ``{"instances": [...]}`` bodies of ``batch_size`` rows, cycling through the rows."""
    if not rows:
        raise MeasureError("no rows to send; pass --input FILE")
    count = max(1, min(MAX_BODIES, -(-len(rows) // batch_size)))
    return [
        json.dumps(
            {"instances": [rows[(k * batch_size + i) % len(rows)] for i in range(batch_size)]}, default=_json_value
        ).encode()
        for k in range(count)
    ]


def _json_value(value: Any) -> Any:
    return value.item() if isinstance(value, numpy.generic) else str(value)


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
