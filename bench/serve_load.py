"""Load for bench/serve.py: one-row requests on keep-alive connections to 127.0.0.1, one at a
time (latency) or from C load generators for a fixed window (throughput). The generators are
threads or processes (client threads share one GIL; client processes share the server's cores)."""

from __future__ import annotations

import http.client
import multiprocessing
import queue
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any

JSON_HEADERS = {"Content-Type": "application/json"}
CLIENTS = ("threads", "processes")
#: requests on a fresh connection before any is timed
CONNECTION_WARMUP = 2


@dataclass(frozen=True)
class Endpoint:
    """Where one server answers one prediction request."""

    port: int
    path: str
    body: bytes


@dataclass
class Window:
    """What one throughput window measured."""

    seconds: float
    timings: list[float] = field(default_factory=list)
    errors: int = 0

    @property
    def rate(self) -> float:
        return len(self.timings) / self.seconds if self.seconds else 0.0


def one_request(connection: http.client.HTTPConnection, endpoint: Endpoint) -> tuple[float, int, bytes]:
    start = time.perf_counter()
    connection.request("POST", endpoint.path, body=endpoint.body, headers=JSON_HEADERS)
    response = connection.getresponse()
    data = response.read()
    return time.perf_counter() - start, response.status, data


def percentile_ms(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000 if ordered else float("nan")


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000 if values else float("nan")


def sequential_chunk(endpoint: Endpoint, requests: int) -> tuple[list[float], int]:
    """REQUESTS one after another on a fresh keep-alive connection: (seconds each, errors)."""
    connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=60)
    timings: list[float] = []
    errors = 0
    try:
        for _ in range(CONNECTION_WARMUP):
            one_request(connection, endpoint)
        for _ in range(requests):
            seconds, status, _ = one_request(connection, endpoint)
            if status == 200:
                timings.append(seconds)
            else:
                errors += 1
    finally:
        connection.close()
    return timings, errors


class _Box:
    """``multiprocessing.Value``'s ``.value`` for threads."""

    def __init__(self) -> None:
        self.value = 0.0


def load_worker(endpoint: Endpoint, ready: Any, go: Any, stop_at: Any, results: Any) -> None:
    """Connect, wait for the common start, then send requests until the common stop time.
    Only requests finished inside the window count (time.monotonic is one clock for all
    processes on Linux)."""
    connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=60)
    timings: list[float] = []
    errors = 0
    try:
        connection.connect()
        ready.put(True)
        go.wait()
        deadline = stop_at.value
        while True:
            began = time.monotonic()
            if began >= deadline:
                break
            try:
                connection.request("POST", endpoint.path, body=endpoint.body, headers=JSON_HEADERS)
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                status = 0
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=60)
            ended = time.monotonic()
            if ended > deadline:
                break
            if status == 200:
                timings.append(ended - began)
            else:
                errors += 1
    finally:
        connection.close()
        results.put((timings, errors))


def throughput_window(endpoint: Endpoint, clients: int, duration: float, client: str) -> Window:
    """CLIENTS generators, all connected before the clock starts, for DURATION seconds."""
    workers: list[threading.Thread | multiprocessing.process.BaseProcess]
    ready: Any
    go: Any
    stop_at: Any
    results: Any
    if client == "processes":
        # forkserver: the parent has mlflow's threads; forking it directly could copy a held lock
        context = multiprocessing.get_context("forkserver")
        ready, go, stop_at, results = context.Queue(), context.Event(), context.Value("d", 0.0), context.Queue()
        workers = [
            context.Process(target=load_worker, args=(endpoint, ready, go, stop_at, results)) for _ in range(clients)
        ]
    else:
        ready, go, stop_at, results = queue.Queue(), threading.Event(), _Box(), queue.Queue()
        workers = [
            threading.Thread(target=load_worker, args=(endpoint, ready, go, stop_at, results)) for _ in range(clients)
        ]
    for worker in workers:
        worker.start()
    window = Window(duration)
    try:
        for _ in workers:
            ready.get(timeout=60)
        stop_at.value = time.monotonic() + duration
        go.set()
        for _ in workers:
            got, failed = results.get(timeout=duration + 120)
            window.timings += got
            window.errors += failed
    finally:
        go.set()
        for worker in workers:
            worker.join(timeout=30)
            if isinstance(worker, multiprocessing.process.BaseProcess) and worker.is_alive():
                worker.kill()
                worker.join()
    return window


def choose_client(endpoint: Endpoint, clients: int, duration: float) -> tuple[str, dict[str, float]]:
    """Threads or processes, whichever drives the server harder."""
    rates = {kind: throughput_window(endpoint, clients, duration, kind).rate for kind in CLIENTS}
    return max(rates, key=lambda kind: rates[kind]), rates
