"""Serving latency and throughput, paired: `nb2pipe serve` (KServe's ModelServer with nb2pipe's
model class), MLflow's own scoring server (`mlflow models serve --env-manager local`) and
KServe's own scikit-learn server (`python -m sklearnserver`), on the same registered model and
the same one-row request, measured in alternating rounds so that the machine's noise (2 shared
cores) falls on all three alike.

Models (--models, default both), each registered in a private sqlite store (or the one given by
--model-uri with --tracking-uri):
- cancer: the breast-cancer pipeline (StandardScaler + LogisticRegression, 30 features);
- forest: a 500-tree RandomForestClassifier on iris (4 features, n_jobs default, seeded): the
  model's own work dominates, and scikit-learn runs one joblib task per tree.
- torch: a PyTorch MLP on digits (64-128-10), served by nb2pipe alone, without and with
  dynamic batching (`nb2pipe-batched`: --max-batch-size 32 --max-latency-ms 5), on the GPU
  when PyTorch sees one. Targets: the batcher costs a lone client at most its wait (p50 no more
  than the unbatched p50 + 5 ms + 2 ms), and on a GPU batching pays (req/s at 32 at least the
  unbatched server's); on a CPU a one-row forward pass is ~26 us, HTTP dominates, and batching
  only adds its wait: that ratio is reported, not judged.

The three servers of a model run at once (idle ones take no CPU), one worker each, on
127.0.0.1 (sklearnserver binds 0.0.0.0: KServe hard-codes it), each stopped with its process
group afterwards. sklearnserver gets the registered model's own scikit-learn object, dumped with
joblib, and runs without gRPC and without its per-request log lines (as nb2pipe serves); the
row goes to nb2pipe and sklearnserver as v1 `instances`, to MLflow as `dataframe_split`.

- sequential: in each of --rounds rounds every server (in rotated order) answers a chunk of
  requests, one after another on a keep-alive connection: p50 / p90 / p99 / mean (ms) over all
  chunks, and each round's p50 (its spread is the noise).
- throughput: C load generators (C = 1, 8, 32), each its own keep-alive connection, in
  --load-rounds windows per server, rotated: requests/s, p50 / p99, errors (non-200 or broken
  connections). The generators are threads or processes: with --client auto both are tried
  against nb2pipe at concurrency 8 and the faster is used throughout.

Targets, per model: nb2pipe's sequential p50 no higher, and its requests/s at concurrency 8 and
32 no lower, than each other server's (issue 19); for cancer also p50 <= 4 ms, p99 <= 8 ms and
>= 1.5x MLflow's requests/s at 8 (issue 4). Missing one is reported, not an error (exit 0).

sklearnserver is not on PyPI: it is python/sklearnserver of KServe's source release, and it
imports python/storage (kserve-storage). `make bench-serve-deps KSERVE_SRC=DIR`, DIR holding
both (e.g. `git archive v0.20.0 python/sklearnserver python/storage | tar -x -C DIR` in a KServe
clone, or the v0.20.0 release tarball unpacked), installs them into build/sklearnserver-venv, a
venv of their own that borrows .venv's packages read-only (same kserve, uvicorn and
scikit-learn as nb2pipe; .venv itself is untouched). --sklearnserver-python picks another
interpreter; by default this one when it imports sklearnserver, else that venv's; with neither
the server is skipped, with the reason printed.

    python -m bench.serve [--models cancer forest torch] [--servers nb2pipe mlflow sklearnserver]
                          [--requests N] [--rounds 10] [--duration 6] [--load-rounds 3]
                          [--concurrency 1 8 32] [--client auto|threads|processes] [--quick]
                          [--model-uri URI --tracking-uri URI] [--sklearnserver-python PATH]
                          [--json bench/results/serve.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.serve_load import (
    CLIENTS,
    Endpoint,
    Window,
    choose_client,
    median_ms,
    one_request,
    percentile_ms,
    sequential_chunk,
    throughput_window,
)
from bench.serve_models import MODEL_NAME, TRACKING_ENV, TRAINERS, Model, export_for_sklearnserver, register, reuse
from bench.serve_report import batching_verdicts, print_model, verdicts, versions
from nb2pipe.processes import ProcessError, free_port, http_ready, spawn, stop_group, wait_until

ROOT = Path(__file__).resolve().parent.parent
# nothing but 127.0.0.1 may be contacted: MLflow would otherwise fetch its telemetry config
QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
READY_TIMEOUT_S = 180.0
#: seconds a server has to exit after SIGTERM before its group gets SIGKILL
STOP_GRACE_S = 15.0
LOG_LINES = 60
SERVERS = ("nb2pipe", "mlflow", "sklearnserver")
#: requests per server when --requests is not given: a forest request costs ~10x a cancer one
DEFAULT_REQUESTS = {"cancer": 2000, "forest": 400, "torch": 1000, "given": 1000}
WARMUP = {"cancer": 200, "forest": 40, "torch": 100, "given": 100}
#: the PyTorch row: nb2pipe as it is, and with KServe's batcher in front of the model
BATCHED_SERVER = "nb2pipe-batched"
BATCHING = ("--max-batch-size", "32", "--max-latency-ms", "5")
#: where `make bench-serve-deps` installs sklearnserver
SKLEARNSERVER_VENV_PYTHON = ROOT / "build" / "sklearnserver-venv" / "bin" / "python"
LOOPBACK = ("--host", "127.0.0.1")
MLFLOW_OPTIONS = ("--env-manager", "local", "-h", "127.0.0.1", "--workers", "1")
# no gRPC listener, no access-log or latency line per request: the leanest KServe server
SKLEARNSERVER_OPTIONS = (
    "--workers",
    "1",
    "--enable_grpc",
    "false",
    "--configure_logging",
    "false",
    "--enable_latency_logging",
    "false",
)


@dataclass(frozen=True)
class Server:
    """One server: how to start it and what one prediction request looks like."""

    name: str
    command: list[str]
    ready_path: str
    endpoint: Endpoint


@dataclass
class Settings:
    requests: int | None
    rounds: int
    duration: float
    load_rounds: int
    concurrency: list[int]
    client: str
    servers: list[str]
    sklearnserver_python: str | None
    #: why there is no sklearnserver interpreter, when there is none
    sklearnserver_missing: str = ""
    calibration: dict[str, float] = field(default_factory=dict)


# --- the servers ---------------------------------------------------------------------------


def find_sklearnserver(given: str | None) -> tuple[str | None, str]:
    """The interpreter that imports sklearnserver: (path, "") or (None, why there is none)."""
    candidates = [given] if given else [sys.executable, str(SKLEARNSERVER_VENV_PYTHON)]
    tried = []
    for python in candidates:
        if python is None or not Path(python).exists():
            tried.append(f"{python} does not exist")
            continue
        probe = subprocess.run(
            [python, "-c", "import sklearnserver"], capture_output=True, text=True, env={**os.environ, **QUIET}
        )
        if probe.returncode == 0:
            return python, ""
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        tried.append(f"{python}: {last}")
    return None, "; ".join(tried) + " (see `make bench-serve-deps` in this file's docstring)"


def servers_for(model: Model, folder: Path, settings: Settings) -> tuple[list[Server], dict[str, str]]:
    """The servers asked for, and the reason for each one left out."""
    skipped: dict[str, str] = {}
    chosen: list[Server] = []
    v1_body = json.dumps({"instances": [model.row]}).encode()
    for name in settings.servers:
        port = free_port()
        if model.key == "torch" and name != "nb2pipe":
            skipped[name] = "the PyTorch row compares nb2pipe without and with batching"
        elif name == "nb2pipe":
            command = [sys.executable, "-m", "nb2pipe", "serve", model.uri, "--name", MODEL_NAME, *LOOPBACK]
            chosen.append(
                Server(
                    name,
                    [*command, "--port", str(port)],
                    f"/v2/models/{MODEL_NAME}/ready",
                    Endpoint(port, f"/v1/models/{MODEL_NAME}:predict", v1_body),
                )
            )
            if model.key == "torch":
                batched_port = free_port()
                chosen.append(
                    Server(
                        BATCHED_SERVER,
                        [*command, *BATCHING, "--port", str(batched_port)],
                        f"/v2/models/{MODEL_NAME}/ready",
                        Endpoint(batched_port, f"/v1/models/{MODEL_NAME}:predict", v1_body),
                    )
                )
        elif name == "mlflow":
            body = (
                {"dataframe_split": {"columns": model.columns, "data": [model.row]}}
                if model.columns
                else {"inputs": [model.row]}
            )
            command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model.uri, *MLFLOW_OPTIONS]
            chosen.append(
                Server(
                    name,
                    [*command, "-p", str(port)],
                    "/ping",
                    Endpoint(port, "/invocations", json.dumps(body).encode()),
                )
            )
        elif settings.sklearnserver_python is None:
            skipped[name] = settings.sklearnserver_missing
        else:
            model_dir, why_not = export_for_sklearnserver(model, folder / "sklearnserver")
            if model_dir is None:
                skipped[name] = why_not
                continue
            command = [settings.sklearnserver_python, "-m", "sklearnserver", "--model_dir", str(model_dir)]
            command += ["--model_name", MODEL_NAME, "--http_port", str(port), *SKLEARNSERVER_OPTIONS]
            chosen.append(
                Server(
                    name,
                    command,
                    f"/v2/models/{MODEL_NAME}/ready",
                    Endpoint(port, f"/v1/models/{MODEL_NAME}:predict", v1_body),
                )
            )
    return chosen, skipped


@contextmanager
def running(server: Server, folder: Path, tracking_uri: str) -> Iterator[float]:
    """Start the server, wait until it answers ready (yields the seconds that took), and stop
    its whole process group however the block ends."""
    log_path = folder / f"{server.name}.log"
    environment = {
        **os.environ,
        **QUIET,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    if tracking_uri:
        environment[TRACKING_ENV] = tracking_uri
    started = time.monotonic()
    process = spawn(server.command, log=log_path, env=environment, cwd=folder)
    try:
        ready = http_ready(f"http://127.0.0.1:{server.endpoint.port}{server.ready_path}")
        try:
            wait_until(ready, process, READY_TIMEOUT_S, server.name, log=log_path, log_lines=LOG_LINES)
        except ProcessError as exc:
            raise SystemExit(str(exc)) from None
        yield time.monotonic() - started
    finally:
        stop_group(process, grace=STOP_GRACE_S)


def check(server: Server) -> Any:
    """One request before measuring: the server must answer 200 with predictions."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", server.endpoint.port, timeout=60)
    try:
        _, status, data = one_request(connection, server.endpoint)
    finally:
        connection.close()
    if status != 200:
        raise SystemExit(f"{server.name} answered {status}: {data[:500]!r}")
    answer = json.loads(data)
    if not isinstance(answer, dict) or "predictions" not in answer:
        raise SystemExit(f"{server.name} answered without predictions: {data[:500]!r}")
    return answer["predictions"]


# --- measuring, paired ---------------------------------------------------------------------


def rotated(names: list[str], turn: int) -> list[str]:
    """Round ``turn``'s order: each server goes first (and last) equally often."""
    shift = turn % len(names)
    return names[shift:] + names[:shift]


def measure_sequential(servers: list[Server], requests: int, rounds: int, warmup: int) -> dict[str, dict[str, Any]]:
    names = [server.name for server in servers]
    endpoint = {server.name: server.endpoint for server in servers}
    for name in names:
        sequential_chunk(endpoint[name], warmup)
    per_round = max(1, math.ceil(requests / rounds))
    timings: dict[str, list[float]] = {name: [] for name in names}
    errors = dict.fromkeys(names, 0)
    round_p50: dict[str, list[float]] = {name: [] for name in names}
    for turn in range(rounds):
        for name in rotated(names, turn):
            got, failed = sequential_chunk(endpoint[name], per_round)
            timings[name] += got
            errors[name] += failed
            round_p50[name].append(median_ms(got))
    lowest = [min(names, key=lambda name: round_p50[name][turn]) for turn in range(rounds)]
    return {
        name: {
            "requests": len(timings[name]) + errors[name],
            "errors": errors[name],
            "p50_ms": percentile_ms(timings[name], 0.50),
            "p90_ms": percentile_ms(timings[name], 0.90),
            "p99_ms": percentile_ms(timings[name], 0.99),
            "mean_ms": sum(timings[name]) / len(timings[name]) * 1000 if timings[name] else float("nan"),
            "round_p50_ms": [round(value, 3) for value in round_p50[name]],
            "rounds_lowest_p50": lowest.count(name),
        }
        for name in names
    }


def measure_throughput(servers: list[Server], settings: Settings) -> dict[str, list[dict[str, Any]]]:
    names = [server.name for server in servers]
    endpoint = {server.name: server.endpoint for server in servers}
    window_s = settings.duration / settings.load_rounds
    measured: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for level, clients in enumerate(settings.concurrency):
        windows: dict[str, list[Window]] = {name: [] for name in names}
        for turn in range(settings.load_rounds):
            for name in rotated(names, turn + level):
                windows[name].append(throughput_window(endpoint[name], clients, window_s, settings.client))
        for name in names:
            timings = [seconds for window in windows[name] for seconds in window.timings]
            seconds = sum(window.seconds for window in windows[name])
            measured[name].append(
                {
                    "concurrency": clients,
                    "requests": len(timings),
                    "errors": sum(window.errors for window in windows[name]),
                    "requests_per_s": len(timings) / seconds,
                    "window_requests_per_s": [round(window.rate, 1) for window in windows[name]],
                    "p50_ms": percentile_ms(timings, 0.50),
                    "p99_ms": percentile_ms(timings, 0.99),
                }
            )
    return measured


def measure_model(model: Model, folder: Path, settings: Settings) -> dict[str, Any]:
    servers, skipped = servers_for(model, folder, settings)
    for name, reason in skipped.items():
        print(f"[{model.key}] {name} skipped: {reason}")
    if not servers:
        raise SystemExit("no server to measure")
    results: dict[str, dict[str, Any]] = {}
    with ExitStack() as stack:
        for server in servers:  # one at a time: loading competes for the same 2 cores
            ready_s = stack.enter_context(running(server, folder, model.tracking_uri))
            results[server.name] = {"ready_s": round(ready_s, 2), "prediction": check(server)}
            print(f"[{model.key}] {server.name}: ready in {ready_s:.1f} s")
        if settings.client == "auto":
            nb2pipe = next((s for s in servers if s.name == "nb2pipe"), servers[0])
            clients = 8 if 8 in settings.concurrency else max(settings.concurrency)
            settings.client, settings.calibration = choose_client(nb2pipe.endpoint, clients, 2.0)
            rates = ", ".join(f"{kind} {rate:.0f} req/s" for kind, rate in settings.calibration.items())
            print(f"load generators at concurrency {clients}: {rates} -> {settings.client}")
        requests = settings.requests or DEFAULT_REQUESTS[model.key]
        sequential = measure_sequential(servers, requests, settings.rounds, min(WARMUP[model.key], requests))
        throughput = measure_throughput(servers, settings)
    for name in results:
        results[name]["sequential"] = sequential[name]
        results[name]["throughput"] = throughput[name]
    predictions = [json.dumps(measured["prediction"]) for measured in results.values()]
    from nb2pipe.store.registry import serving_device

    return {
        "model": {"uri": model.uri, "description": model.description, "features": len(model.row)},
        # the servers run on this machine: a PyTorch model computes where this process would
        "device": serving_device("pytorch" if model.key == "torch" else "sklearn"),
        "requests_per_server": requests,
        "skipped": skipped,
        "predictions_agree": len(set(predictions)) == 1,
        "servers": results,
    }


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=sorted(TRAINERS), default=list(TRAINERS))
    parser.add_argument("--servers", nargs="+", choices=SERVERS, default=list(SERVERS))
    parser.add_argument(
        "--requests", type=int, help="sequential requests per server (default: cancer 2000, forest 400)"
    )
    parser.add_argument("--rounds", type=int, default=10, help="sequential rounds, servers rotated (default 10)")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per server per throughput level")
    parser.add_argument("--load-rounds", type=int, default=3, help="windows per server per level (default 3)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32], help="default: 1 8 32")
    parser.add_argument("--client", choices=("auto", *CLIENTS), default="auto", help="load generators (default auto)")
    parser.add_argument("--quick", action="store_true", help="small numbers, for a smoke run")
    parser.add_argument("--model-uri", help="serve this model instead of registering the bench models")
    parser.add_argument("--tracking-uri", help="where --model-uri is registered (default: $MLFLOW_TRACKING_URI)")
    parser.add_argument("--sklearnserver-python", help="interpreter that imports sklearnserver (see the docstring)")
    parser.add_argument("--json", "--output", dest="json", default=str(ROOT / "bench" / "results" / "serve.json"))
    args = parser.parse_args()
    if args.quick:
        args.requests, args.rounds, args.duration, args.load_rounds, args.concurrency = 60, 3, 1.5, 1, [1, 8]
    return args


def main() -> None:
    args = parse_arguments()
    os.environ.update(QUIET)
    # a SIGTERM (a timeout, a make interrupted) unwinds like ^C: every server is stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    sklearnserver_python, why_not = (None, "not asked for")
    if "sklearnserver" in args.servers:
        sklearnserver_python, why_not = find_sklearnserver(args.sklearnserver_python)
        if sklearnserver_python is None:
            print(f"sklearnserver skipped: {why_not}")
    settings = Settings(
        args.requests,
        args.rounds,
        args.duration,
        args.load_rounds,
        args.concurrency,
        args.client,
        args.servers,
        sklearnserver_python,
        why_not,
    )
    began = time.monotonic()
    load_before = os.getloadavg()
    models: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="nb2pipe-bench-serve-") as scratch:
        for key in ["given"] if args.model_uri else args.models:
            folder = Path(scratch) / key
            folder.mkdir()
            model = reuse(args.model_uri, args.tracking_uri, folder) if args.model_uri else register(key, folder)
            measured = measure_model(model, folder, settings)
            measured["targets"] = batching_verdicts(measured) if key == "torch" else verdicts(key, measured)
            models[key] = measured
    for key, measured in models.items():
        print_model(key, measured)
    met = all(v["pass"] for measured in models.values() for v in measured["targets"].values())
    print(f"\ntargets met: {met}" + ("" if met else "  (a benchmark: reported, exit status 0)"))
    document = {
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_before": [round(v, 2) for v in load_before],
            "load_average_after": [round(v, 2) for v in os.getloadavg()],
            "python": platform.python_version(),
            "platform": platform.platform(),
            "versions": versions(sklearnserver_python),
        },
        "request": {
            "rows_per_request": 1,
            "nb2pipe": f"POST /v1/models/{MODEL_NAME}:predict {{instances}}",
            "sklearnserver": f"POST /v1/models/{MODEL_NAME}:predict {{instances}}",
            "mlflow": "POST /invocations {dataframe_split}",
        },
        "servers_workers": 1,
        "sklearnserver_options": list(SKLEARNSERVER_OPTIONS),
        "sklearnserver_skipped": None if sklearnserver_python else why_not,
        "client": settings.client,
        "client_calibration_req_per_s": settings.calibration,
        "settings": {
            "requests": args.requests,
            "rounds": args.rounds,
            "duration_s": args.duration,
            "load_rounds": args.load_rounds,
            "concurrency": args.concurrency,
            "quick": args.quick,
        },
        "models": models,
        "met": met,
        "wall_s": round(time.monotonic() - began, 1),
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
