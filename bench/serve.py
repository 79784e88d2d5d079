"""Serving latency and throughput: `nb2pipe serve` (KServe's ModelServer) against MLflow's
own scoring server (`mlflow models serve --env-manager local`), same model, same row.

The model is the breast-cancer scikit-learn pipeline (scaler + logistic regression, 30
features), registered in a private sqlite store. Each server runs alone (2 cores: no
contention between them), on 127.0.0.1, and is stopped by PID afterwards.

- sequential: one keep-alive connection, one row per request: p50 / p90 / p99 / mean (ms)
- throughput: C load-generating processes (each one keep-alive connection, C = 1, 8, 32)
  for a fixed time: requests/s, p50 / p99, errors. Processes rather than threads: Python
  client threads share one GIL and would cap the measured rate below the servers'.

Targets (issue 4): nb2pipe sequential p50 <= 4 ms and p99 <= 8 ms; throughput >= 1.5x
MLflow's at concurrency 8.

    python bench/serve.py [--requests 2000] [--duration 5] [--concurrency 1 8 32] [--quick]
                          [--json bench/results/serve.json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MLFLOW_OPTIONS = ("--env-manager", "local", "-h", "127.0.0.1", "-p")
sys.path.insert(0, str(ROOT / "tests"))


@dataclass(frozen=True)
class Target:
    """One server: how to start it and what one prediction request looks like."""

    name: str
    command: list[str]
    ready_path: str
    path: str
    body: bytes


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def register(folder: Path) -> tuple[list[str], list[float]]:
    """Train and register the model (the servers find it through MLFLOW_TRACKING_URI);
    (column names, one row)."""
    from registered import train_classifier

    from nb2pipe.lifecycle.register import Registration, register_model

    model, features, labels = train_classifier()
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder / 'mlflow.db'}"
    accuracy = float(model.score(features, labels))
    register_model(model, features, Registration("bench", "bench", metrics={"accuracy": accuracy}))
    return [str(c) for c in features.columns], features.iloc[0].tolist()


@contextmanager
def running(target: Target, port: int, folder: Path) -> Iterator[None]:
    log = (folder / f"{target.name}.log").open("wb")
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    process = subprocess.Popen(
        target.command, stdout=log, stderr=subprocess.STDOUT, env=environment, cwd=folder, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise SystemExit(f"{target.name} exited:\n{(folder / f'{target.name}.log').read_text()[-3000:]}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", target.ready_path)
                if connection.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{target.name} not ready after 120 s")
            time.sleep(0.25)
        yield
    finally:
        for sent in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sent)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=15)
                break
            except subprocess.TimeoutExpired:
                continue
        log.close()


def one_request(connection: http.client.HTTPConnection, target: Target) -> tuple[float, int]:
    start = time.perf_counter()
    connection.request("POST", target.path, body=target.body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    response.read()
    return time.perf_counter() - start, response.status


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000 if ordered else float("nan")


def sequential(target: Target, port: int, requests: int, warmup: int) -> dict[str, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for _ in range(warmup):
        one_request(connection, target)
    timings, errors = [], 0
    for _ in range(requests):
        seconds, status = one_request(connection, target)
        timings.append(seconds)
        errors += status != 200
    connection.close()
    return {
        "requests": requests,
        "errors": errors,
        "p50_ms": percentile(timings, 0.50),
        "p90_ms": percentile(timings, 0.90),
        "p99_ms": percentile(timings, 0.99),
        "mean_ms": sum(timings) / len(timings) * 1000,
    }


def _load_worker(target: Target, port: int, start_at: float, stop_at: float, results: Any) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    timings, errors = [], 0
    while time.time() < start_at:
        time.sleep(0.001)
    while time.time() < stop_at:
        try:
            seconds, status = one_request(connection, target)
        except OSError:
            errors += 1
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            continue
        timings.append(seconds)
        errors += status != 200
    results.put((timings, errors))


def throughput(target: Target, port: int, clients: int, duration: float) -> dict[str, Any]:
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    start_at = time.time() + 0.5 + clients * 0.01
    stop_at = start_at + duration
    workers = [
        context.Process(target=_load_worker, args=(target, port, start_at, stop_at, results)) for _ in range(clients)
    ]
    for worker in workers:
        worker.start()
    timings: list[float] = []
    errors = 0
    for _ in workers:
        got, failed = results.get(timeout=duration + 120)
        timings += got
        errors += failed
    for worker in workers:
        worker.join()
    return {
        "concurrency": clients,
        "requests": len(timings),
        "errors": errors,
        "requests_per_s": len(timings) / duration,
        "p50_ms": percentile(timings, 0.50),
        "p99_ms": percentile(timings, 0.99),
    }


def targets(port: int, columns: list[str], row: list[float]) -> dict[str, Target]:
    nb2pipe = Target(
        "nb2pipe",
        [sys.executable, "-m", "nb2pipe", "serve", "models:/bench/1", "--name", "bench", "--port", str(port)],
        "/v2/models/bench/ready",
        "/v1/models/bench:predict",
        json.dumps({"instances": [row]}).encode(),
    )
    mlflow = Target(
        "mlflow",
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/bench/1", *MLFLOW_OPTIONS, str(port)],
        "/ping",
        "/invocations",
        json.dumps({"dataframe_split": {"columns": columns, "data": [row]}}).encode(),
    )
    return {"nb2pipe": nb2pipe, "mlflow": mlflow}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="sequential requests per server")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per throughput level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--quick", action="store_true", help="small numbers, for a smoke run")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "serve.json"))
    args = parser.parse_args()
    if args.quick:
        args.requests, args.duration, args.concurrency = 200, 1.0, [1, 8]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="nb2pipe-bench-serve-") as scratch:
        folder = Path(scratch)
        columns, row = register(folder)
        for name in ("nb2pipe", "mlflow"):
            port = free_port()
            target = targets(port, columns, row)[name]
            with running(target, port, folder):
                measured = {"sequential": sequential(target, port, args.requests, warmup=200)}
                measured["throughput"] = [throughput(target, port, c, args.duration) for c in args.concurrency]
            results[name] = measured
            print_server(name, measured)
    ours, theirs = results["nb2pipe"], results["mlflow"]
    ratio = rate_at(ours, 8) / rate_at(theirs, 8)
    met = {
        "sequential_p50_le_4ms": ours["sequential"]["p50_ms"] <= 4.0,
        "sequential_p99_le_8ms": ours["sequential"]["p99_ms"] <= 8.0,
        "throughput_at_8_ge_1.5x_mlflow": ratio >= 1.5,
    }
    print(f"throughput at concurrency 8: nb2pipe / mlflow = {ratio:.2f}x")
    for name, passed in met.items():
        print(f"  {name}: {'met' if passed else 'MISSED'}")
    document = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "model": "breast-cancer StandardScaler + LogisticRegression (30 features), one row per request",
        "client": "processes, one keep-alive connection each",
        "servers": results,
        "throughput_ratio_at_8": ratio,
        "targets": {"sequential_p50_ms": 4.0, "sequential_p99_ms": 8.0, "throughput_ratio_at_8": 1.5},
        "met": met,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {args.json}")


def rate_at(measured: dict[str, Any], clients: int) -> float:
    rates = {level["concurrency"]: level["requests_per_s"] for level in measured["throughput"]}
    return float(rates.get(clients, float("nan")))


def print_server(name: str, measured: dict[str, Any]) -> None:
    seq = measured["sequential"]
    print(
        f"{name}: sequential p50 {seq['p50_ms']:.2f} ms, p90 {seq['p90_ms']:.2f} ms, p99 {seq['p99_ms']:.2f} ms, "
        f"mean {seq['mean_ms']:.2f} ms ({seq['errors']} errors)"
    )
    for level in measured["throughput"]:
        print(
            f"  concurrency {level['concurrency']:>2}: {level['requests_per_s']:7.0f} req/s, "
            f"p50 {level['p50_ms']:.2f} ms, p99 {level['p99_ms']:.2f} ms ({level['errors']} errors)"
        )


if __name__ == "__main__":
    main()
