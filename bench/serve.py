"""Serving latency and throughput: `nb2pipe serve` (KServe's ModelServer) against MLflow's
own scoring server (`mlflow models serve --env-manager local`), same model, same row.

The model is the breast-cancer scikit-learn pipeline (scaler + logistic regression, 30
features) registered in a private sqlite store, or the one given by --model-uri (with
--tracking-uri). Each server runs alone (2 cores: no contention between them) with one
worker, on 127.0.0.1, and its process group is stopped by PID afterwards.

- sequential: warm-up, then one keep-alive connection, one row per request: p50 / p90 /
  p99 / mean (ms)
- throughput: C load generators (each its own keep-alive connection; C = 1, 8, 32) for a
  fixed time: requests/s, p50 / p99, errors (non-200 or broken connections). The generators
  are threads or processes: with --client auto both are tried against nb2pipe at
  concurrency 8 and the faster is used for every measurement (client threads share one GIL;
  client processes share the server's 2 cores).

Targets (issue 4): nb2pipe sequential p50 <= 4 ms and p99 <= 8 ms; throughput >= 1.5x
MLflow's at concurrency 8. Missing one is reported, not an error (exit status 0).

    python -m bench.serve [--requests 2000] [--duration 5] [--concurrency 1 8 32] [--quick]
                          [--client auto|threads|processes] [--model-uri URI --tracking-uri URI]
                          [--json bench/results/serve.json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import platform
import queue
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nb2pipe.processes import ProcessError, free_port, http_ready, spawn, stop_group, wait_until

ROOT = Path(__file__).resolve().parent.parent

TRACKING_ENV = "MLFLOW_TRACKING_URI"
# nothing but 127.0.0.1 may be contacted: MLflow would otherwise fetch its telemetry config
QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
READY_TIMEOUT_S = 120.0
#: seconds a server has to exit after SIGTERM before its group gets SIGKILL
STOP_GRACE_S = 15.0
#: log lines shown when a server does not start
LOG_LINES = 60
WARMUP = 200
MODEL_NAME = "bench"
JSON_HEADERS = {"Content-Type": "application/json"}
CLIENTS = ("threads", "processes")
LOOPBACK = ("--host", "127.0.0.1")
MLFLOW_OPTIONS = ("--env-manager", "local", "-h", "127.0.0.1", "--workers", "1")


@dataclass(frozen=True)
class Target:
    """One server: how to start it and what one prediction request looks like."""

    name: str
    command: list[str]
    ready_path: str
    path: str
    body: bytes


@dataclass(frozen=True)
class Model:
    uri: str
    tracking_uri: str
    columns: list[str] | None
    row: list[Any]
    description: str


# --- the model -----------------------------------------------------------------------------


def register(folder: Path) -> Model:
    """Train and register the breast-cancer pipeline in FOLDER's own sqlite store."""
    from nb2pipe.lifecycle.register import Registration, register_model
    from tests.support.registered import train_classifier

    model, features, labels = train_classifier()
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    saved = os.environ.get(TRACKING_ENV)
    os.environ[TRACKING_ENV] = uri
    try:
        accuracy = float(model.score(features, labels))
        registered = register_model(
            model, features, Registration(MODEL_NAME, "bench", metrics={"accuracy": accuracy}), store=folder
        )
    finally:  # mlflow exports the URI it is given; leave the caller's environment as it was
        if saved is None:
            os.environ.pop(TRACKING_ENV, None)
        else:
            os.environ[TRACKING_ENV] = saved
    return Model(
        registered.uri,
        uri,
        [str(c) for c in features.columns],
        [float(v) for v in features.iloc[0]],
        "breast-cancer StandardScaler + LogisticRegression (30 features), registered here",
    )


def reuse(model_uri: str, tracking_uri: str | None, folder: Path) -> Model:
    """A model already registered: its first input-example row is the request."""
    import mlflow
    from mlflow.models import Model as MlflowModel

    tracking = tracking_uri or os.environ.get(TRACKING_ENV, "")
    if tracking:
        mlflow.set_tracking_uri(tracking)
        mlflow.set_registry_uri(tracking)
    local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(folder / "model"))
    example = MlflowModel.load(local).load_input_example(local)
    if example is None:
        raise SystemExit(f"{model_uri} has no input example: cannot tell what one request row looks like")
    if hasattr(example, "iloc"):
        columns: list[str] | None = [str(c) for c in example.columns]
        row = example.iloc[0].tolist()
    else:
        columns, row = None, list(example[0].tolist() if hasattr(example[0], "tolist") else example[0])
    return Model(model_uri, tracking, columns, row, f"{model_uri} (given)")


def targets(model: Model, port: int) -> dict[str, Target]:
    nb2pipe = Target(
        "nb2pipe",
        [sys.executable, "-m", "nb2pipe", "serve", model.uri, "--name", MODEL_NAME, *LOOPBACK, "--port", str(port)],
        f"/v2/models/{MODEL_NAME}/ready",
        f"/v1/models/{MODEL_NAME}:predict",
        json.dumps({"instances": [model.row]}).encode(),
    )
    mlflow_body = (
        {"dataframe_split": {"columns": model.columns, "data": [model.row]}}
        if model.columns
        else {"inputs": [model.row]}
    )
    mlflow = Target(
        "mlflow",
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", model.uri, *MLFLOW_OPTIONS, "-p", str(port)],
        "/ping",
        "/invocations",
        json.dumps(mlflow_body).encode(),
    )
    return {"nb2pipe": nb2pipe, "mlflow": mlflow}


# --- the servers ---------------------------------------------------------------------------


@contextmanager
def running(target: Target, port: int, folder: Path, tracking_uri: str) -> Iterator[float]:
    """Start the server, wait until it answers ready (yields the seconds that took), and stop
    its whole process group however the block ends."""
    log_path = folder / f"{target.name}.log"
    environment = {
        **os.environ,
        **QUIET,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    if tracking_uri:
        environment[TRACKING_ENV] = tracking_uri
    started = time.monotonic()
    process = spawn(target.command, log=log_path, env=environment, cwd=folder)
    try:
        ready = http_ready(f"http://127.0.0.1:{port}{target.ready_path}")
        try:
            wait_until(ready, process, READY_TIMEOUT_S, target.name, log=log_path, log_lines=LOG_LINES)
        except ProcessError as exc:
            raise SystemExit(str(exc)) from None
        yield time.monotonic() - started
    finally:
        stop_group(process, grace=STOP_GRACE_S)


# --- measuring -----------------------------------------------------------------------------


def one_request(connection: http.client.HTTPConnection, path: str, body: bytes) -> tuple[float, int, bytes]:
    start = time.perf_counter()
    connection.request("POST", path, body=body, headers=JSON_HEADERS)
    response = connection.getresponse()
    data = response.read()
    return time.perf_counter() - start, response.status, data


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000 if ordered else float("nan")


def check(target: Target, port: int) -> Any:
    """One request before measuring: the server must answer 200 with predictions."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        _, status, data = one_request(connection, target.path, target.body)
    finally:
        connection.close()
    if status != 200:
        raise SystemExit(f"{target.name} answered {status}: {data[:500]!r}")
    answer = json.loads(data)
    if "predictions" not in answer:
        raise SystemExit(f"{target.name} answered without predictions: {data[:500]!r}")
    return answer["predictions"]


def sequential(target: Target, port: int, requests: int, warmup: int) -> dict[str, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for _ in range(warmup):
            one_request(connection, target.path, target.body)
        timings, errors = [], 0
        for _ in range(requests):
            seconds, status, _ = one_request(connection, target.path, target.body)
            timings.append(seconds)
            errors += status != 200
    finally:
        connection.close()
    return {
        "requests": requests,
        "errors": errors,
        "p50_ms": percentile(timings, 0.50),
        "p90_ms": percentile(timings, 0.90),
        "p99_ms": percentile(timings, 0.99),
        "mean_ms": sum(timings) / len(timings) * 1000,
    }


class _Box:
    """``multiprocessing.Value``'s ``.value`` for threads."""

    def __init__(self) -> None:
        self.value = 0.0


def load_worker(port: int, path: str, body: bytes, ready: Any, go: Any, stop_at: Any, results: Any) -> None:
    """Connect, wait for the common start, then send requests until the common stop time.
    Only requests finished inside the window count (time.monotonic is one clock for all
    processes on Linux)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
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
                connection.request("POST", path, body=body, headers=JSON_HEADERS)
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                status = 0
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
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


def throughput(target: Target, port: int, clients: int, duration: float, client: str) -> dict[str, Any]:
    if client == "processes":
        # forkserver: the parent has mlflow's threads; forking it directly could copy a held lock
        context = multiprocessing.get_context("forkserver")
        ready, go, stop_at, results = context.Queue(), context.Event(), context.Value("d", 0.0), context.Queue()
        workers: list[Any] = [
            context.Process(target=load_worker, args=(port, target.path, target.body, ready, go, stop_at, results))
            for _ in range(clients)
        ]
    else:
        ready, go, stop_at, results = queue.Queue(), threading.Event(), _Box(), queue.Queue()
        workers = [
            threading.Thread(target=load_worker, args=(port, target.path, target.body, ready, go, stop_at, results))
            for _ in range(clients)
        ]
    for worker in workers:
        worker.start()
    timings: list[float] = []
    errors = 0
    try:
        for _ in workers:  # every generator connected before the clock starts
            ready.get(timeout=60)
        stop_at.value = time.monotonic() + duration
        go.set()
        for _ in workers:
            got, failed = results.get(timeout=duration + 120)
            timings += got
            errors += failed
    finally:
        go.set()
        for worker in workers:
            worker.join(timeout=30)
            if isinstance(worker, multiprocessing.process.BaseProcess) and worker.is_alive():
                worker.kill()
                worker.join()
    return {
        "concurrency": clients,
        "requests": len(timings),
        "errors": errors,
        "requests_per_s": len(timings) / duration,
        "p50_ms": percentile(timings, 0.50),
        "p99_ms": percentile(timings, 0.99),
    }


def choose_client(target: Target, port: int, clients: int, duration: float) -> tuple[str, dict[str, float]]:
    """Threads or processes, whichever drives the (faster) server harder."""
    rates = {kind: throughput(target, port, clients, duration, kind)["requests_per_s"] for kind in CLIENTS}
    return max(rates, key=lambda kind: rates[kind]), rates


# --- reporting -----------------------------------------------------------------------------


def rate_at(measured: dict[str, Any], clients: int) -> float:
    rates = {level["concurrency"]: level["requests_per_s"] for level in measured["throughput"]}
    return float(rates.get(clients, float("nan")))


def print_tables(results: dict[str, dict[str, Any]]) -> None:
    print()
    print(f"{'sequential':12} {'requests':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'errors':>6}")
    for name, measured in results.items():
        seq = measured["sequential"]
        print(
            f"{name:12} {seq['requests']:>8} {seq['p50_ms']:>8.2f} {seq['p90_ms']:>8.2f} {seq['p99_ms']:>8.2f} "
            f"{seq['mean_ms']:>8.2f} {seq['errors']:>6}"
        )
    print()
    print(f"{'throughput':12} {'clients':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'requests':>8} {'errors':>6}")
    for name, measured in results.items():
        for level in measured["throughput"]:
            print(
                f"{name:12} {level['concurrency']:>8} {level['requests_per_s']:>8.0f} {level['p50_ms']:>8.2f} "
                f"{level['p99_ms']:>8.2f} {level['requests']:>8} {level['errors']:>6}"
            )
    print()


def versions() -> dict[str, str]:
    from importlib import metadata

    found = {}
    for name in ("kserve", "mlflow", "scikit-learn", "fastapi", "uvicorn"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="sequential requests per server (default 2000)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per throughput level (default 5)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32], help="default: 1 8 32")
    parser.add_argument("--client", choices=("auto", *CLIENTS), default="auto", help="load generators (default auto)")
    parser.add_argument("--quick", action="store_true", help="small numbers, for a smoke run")
    parser.add_argument("--model-uri", help="serve this model instead of registering one")
    parser.add_argument("--tracking-uri", help="where --model-uri is registered (default: $MLFLOW_TRACKING_URI)")
    parser.add_argument("--json", "--output", dest="json", default=str(ROOT / "bench" / "results" / "serve.json"))
    args = parser.parse_args()
    if args.quick:
        args.requests, args.duration, args.concurrency = 200, 1.0, [1, 8]
    warmup = min(WARMUP, args.requests)
    os.environ.update(QUIET)
    # a SIGTERM (a timeout, a make interrupted) unwinds like ^C: every server is stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))

    results: dict[str, dict[str, Any]] = {}
    client, calibration = args.client, {}
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="nb2pipe-bench-serve-") as scratch:
        folder = Path(scratch)
        model = reuse(args.model_uri, args.tracking_uri, folder) if args.model_uri else register(folder)
        for name in ("nb2pipe", "mlflow"):  # one at a time: 2 cores
            port = free_port()
            target = targets(model, port)[name]
            with running(target, port, folder, model.tracking_uri) as ready_s:
                sample = check(target, port)
                measured: dict[str, Any] = {"ready_s": ready_s, "prediction": sample}
                measured["sequential"] = sequential(target, port, args.requests, warmup)
                if client == "auto":
                    clients = 8 if 8 in args.concurrency else max(args.concurrency)
                    client, calibration = choose_client(target, port, clients, min(2.0, args.duration))
                    rates = ", ".join(f"{kind} {rate:.0f} req/s" for kind, rate in calibration.items())
                    print(f"load generators at concurrency {clients}: {rates} -> {client}")
                measured["throughput"] = [throughput(target, port, c, args.duration, client) for c in args.concurrency]
            results[name] = measured
            seq = measured["sequential"]
            print(
                f"{name}: ready in {ready_s:.1f} s, sequential p50 {seq['p50_ms']:.2f} ms, p99 {seq['p99_ms']:.2f} ms"
            )

    print_tables(results)
    ours, theirs = results["nb2pipe"], results["mlflow"]
    ratio = rate_at(ours, 8) / rate_at(theirs, 8) if rate_at(theirs, 8) else float("nan")
    checks = [
        ("nb2pipe sequential p50 (ms)", "sequential_p50_ms", ours["sequential"]["p50_ms"], "<=", 4.0),
        ("nb2pipe sequential p99 (ms)", "sequential_p99_ms", ours["sequential"]["p99_ms"], "<=", 8.0),
        ("nb2pipe / mlflow req/s at 8 clients", "throughput_ratio_at_8", ratio, ">=", 1.5),
    ]
    verdicts = {}
    for label, key, value, sense, limit in checks:
        passed = value <= limit if sense == "<=" else value >= limit  # nan (not measured) fails
        verdicts[key] = {"value": value, "target": f"{sense} {limit:g}", "pass": passed}
        print(f"  {label:38} {value:8.2f}  target {sense} {limit:<4g} {'PASS' if passed else 'FAIL  <<<'}")
    met = all(v["pass"] for v in verdicts.values())
    print(f"targets met: {met}" + ("" if met else "  (a benchmark: reported, exit status 0)"))

    document = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "versions": versions(),
        },
        "model": {"uri": model.uri, "description": model.description, "features": len(model.row)},
        "request": {
            "rows_per_request": 1,
            "nb2pipe": f"POST /v1/models/{MODEL_NAME}:predict {{instances}}",
            "mlflow": "POST /invocations {dataframe_split}" if model.columns else "POST /invocations {inputs}",
        },
        "servers_workers": 1,
        "client": client,
        "client_calibration_req_per_s": calibration,
        "settings": {
            "requests": args.requests,
            "warmup": warmup,
            "duration_s": args.duration,
            "concurrency": args.concurrency,
            "quick": args.quick,
        },
        "servers": results,
        "throughput_ratio_at_8": ratio,
        "targets": verdicts,
        "met": met,
        "wall_s": round(time.monotonic() - began, 1),
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
