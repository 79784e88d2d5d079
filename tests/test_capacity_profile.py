"""``nb2pipe profile``: a real measurement of the registered breast-cancer model through the CLI,
its error cases, and the measurement code against a tiny local HTTP server of known latency."""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from nb2pipe.capacity.measure import MeasureOptions, measure_endpoint, measure_load, request_bodies
from nb2pipe.capacity.profile import read_profile
from nb2pipe.cli import main
from nb2pipe.cli.profile import targets_from
from nb2pipe.errors import Nb2PipeError
from tests.support.registered import RegisteredModel
from tests.support.served import pids_with_arguments

ROOT = Path(__file__).resolve().parent.parent
CLI_TIMEOUT_S = 240
TOY_SLEEP_S = 0.005


# --- running the CLI -------------------------------------------------------------------------


def run_profile(tracking_uri: str, *arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m nb2pipe profile ...`` as its own process, time-bounded; on a timeout it gets
    SIGTERM first (it then stops its server by PID), SIGKILL only if that does not end it."""
    environment = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    command = [sys.executable, "-m", "nb2pipe", "profile", *arguments]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment, cwd=cwd
    )
    try:
        stdout, stderr = process.communicate(timeout=CLI_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        try:
            stdout, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        pytest.fail(f"nb2pipe profile ran over {CLI_TIMEOUT_S} s:\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def serve_processes(tracking_uri: str) -> list[int]:
    """PIDs of the ``nb2pipe serve`` processes on this machine (from /proc) that serve from
    ``tracking_uri``'s store: other work on a shared machine may serve models of its own."""
    found = []
    for pid in pids_with_arguments(b"nb2pipe", b"serve"):
        try:
            environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(entry.endswith(b"=" + tracking_uri.encode()) for entry in environment):
            found.append(pid)
    return found


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return True
    return state == "Z"


@pytest.mark.slow
def test_profile_measures_the_registered_model(registered_model: RegisteredModel, tmp_path: Path) -> None:
    from sklearn.datasets import load_breast_cancer

    output = tmp_path / "cancer.profile.json"
    before = set(serve_processes(registered_model.tracking_uri))
    options = ["--batch-sizes", "1,4", "--concurrency", "1,2", "--requests", "30", "--slo-ms", "100", "--json"]
    done = run_profile(
        registered_model.tracking_uri, registered_model.model_uri, *options, "-o", str(output), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["output"] == str(output)

    profile = read_profile(output)
    (variant,) = profile.variants
    assert variant.name == "cancer"
    assert variant.model_uri == registered_model.model_uri
    assert variant.batch_sizes == (1, 4)
    for batch in variant.batches:
        quantiles = batch.service_ms
        assert len(quantiles) == 101
        assert quantiles[0] > 0
        assert all(b >= a for a, b in itertools.pairwise(quantiles))
        assert [p.concurrency for p in batch.load] == [1, 2]
        for point in batch.load:
            assert point.errors == 0
            assert point.batches == 30
            assert 0 < point.p50_ms <= point.p95_ms <= point.p99_ms
            assert point.requests_per_s > 0
    # how much a batch gains is a figure, not a test: 30 calls a point are too few to compare
    # rates on a busy machine (bench/profile_variants.py prints the batch gain)
    # the accuracy the fixture logged with the run
    labels = load_breast_cancer().target
    assert variant.accuracy == pytest.approx(float(registered_model.model.score(registered_model.features, labels)))
    assert profile.measured["requests_per_point"] == 30
    assert profile.slo_ms == 100
    if importlib.util.find_spec("nb2pipe.capacity.model") is not None:  # the capacity model fills the rates
        assert all(b.max_rate_under_slo and b.max_rate_under_slo > 0 for b in variant.batches)
    assert profile.measured["cpu_count"] == os.cpu_count()
    # a scikit-learn model computes on the CPU wherever it is served
    assert profile.measured["devices"] == {variant.name: "cpu"}
    assert f"{variant.name}: computed on cpu" in done.stderr

    # the server it started is stopped: its PID is gone and no new nb2pipe serve is left
    pids = [int(p) for p in re.findall(r"\(pid (\d+)\)", done.stderr)]
    assert pids, done.stderr
    assert all(gone(pid) for pid in pids)
    assert set(serve_processes(registered_model.tracking_uri)) <= before


@pytest.mark.slow
def test_unknown_model_is_one_line_and_exit_1(registered_model: RegisteredModel, tmp_path: Path) -> None:
    done = run_profile(registered_model.tracking_uri, "models:/no-such-model/1", "-o", "p.json", cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("nb2pipe: ") and "no-such-model" in lines[0]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "p.json").exists()


@pytest.mark.slow
def test_a_model_without_kept_rows_asks_for_input(registered_model: RegisteredModel, tmp_path: Path) -> None:
    # the model's own folder: a model, but no registered version keeping training data
    folder = next(registered_model.folder.glob("mlartifacts/**/MLmodel")).parent
    done = run_profile(registered_model.tracking_uri, str(folder), "-o", "p.json", cwd=tmp_path)
    assert done.returncode == 1
    assert "--input" in done.stderr and "Traceback" not in done.stderr
    assert "starting nb2pipe serve" not in done.stderr  # it failed before serving anything


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["--batch-sizes", "1,0"], "--batch-sizes"),
        (["--batch-sizes", "one"], "--batch-sizes"),
        (["--concurrency", "0"], "--concurrency"),
        (["--requests", "0"], "--requests"),
        (["--accuracy", "0.9", "--accuracy", "0.8"], "--accuracy"),
        (["--accuracy", "93"], "--accuracy"),
        (["--variant-name", "a", "--variant-name", "b"], "--variant-name"),
        (["--input", "no-such-rows.csv"], "--input"),
        (["--slo-ms", "-5"], "--slo-ms"),
    ],
)
def test_bad_arguments_name_the_option(
    arguments: list[str], named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["profile", "models:/cancer/1", *arguments, "-o", str(tmp_path / "p.json")])
    assert code == 1
    error = capsys.readouterr().err
    assert error.startswith("nb2pipe: ") and named in error


def test_variants_are_named_from_the_uri_or_explicitly() -> None:
    targets = targets_from(
        ["models:/Forest-Small@champion", "big=models:/forest-large/3", "runs:/abc/model"], [], ["0.9", "0.95", "1"]
    )
    assert [(t.name, t.model_uri, t.accuracy) for t in targets] == [
        ("forest-small", "models:/Forest-Small@champion", 0.9),
        ("big", "models:/forest-large/3", 0.95),
        ("model", "runs:/abc/model", 1.0),
    ]
    assert [t.name for t in targets_from(["models:/a/1", "models:/b/1"], ["x", "y"], [])] == ["x", "y"]
    with pytest.raises(Nb2PipeError, match="repeat"):
        targets_from(["models:/a/1", "models:/a/2"], [], [])
    with pytest.raises(Nb2PipeError, match="not both"):
        targets_from(["x=models:/a/1"], ["y"], [])


# --- the measurement against a server of known latency ---------------------------------------


class _Toy(BaseHTTPRequestHandler):
    """Answers one prediction per instance after a fixed sleep; every second call fails when
    the path says so."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the measuring clients expect
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall
    calls = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        time.sleep(TOY_SLEEP_S)
        with _Toy.lock:
            _Toy.calls += 1
            failing = "flaky" in self.path and _Toy.calls % 2 == 0
        answer: Any = {"error": "flaky"} if failing else {"predictions": [0] * len(body["instances"])}
        data = json.dumps(answer).encode()
        self.send_response(500 if failing else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def toy_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Toy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_measurement_sees_the_servers_latency(toy_url: str) -> None:
    rows = [[float(i), float(i) * 2] for i in range(10)]
    options = MeasureOptions(batch_sizes=(1, 3), concurrency=(1, 2), requests=40, warmup=5)
    batches = measure_endpoint(toy_url, "toy", rows, options)
    assert [b.batch_size for b in batches] == [1, 3]
    sleep_ms = TOY_SLEEP_S * 1000
    for batch in batches:
        quantiles = batch.service_ms
        assert len(quantiles) == 101
        assert quantiles[0] >= sleep_ms  # no call can be faster than the server's sleep
        assert sleep_ms <= quantiles[50] < sleep_ms + 5
        one, two = batch.load
        assert (one.errors, two.errors) == (0, 0)
        assert one.batches == two.batches == 40
        assert one.requests_per_s == pytest.approx(batch.batch_size * 1000 / one.mean_ms, rel=0.25)
        # the toy server sleeps in a thread per connection: two clients get about twice the rows
        assert two.requests_per_s > 1.4 * one.requests_per_s


def test_failed_calls_are_counted_as_errors(toy_url: str) -> None:
    bodies = request_bodies([[1.0, 2.0]], 2)
    point = measure_load(toy_url, "flaky", bodies, 2, 2, 40)
    assert point.batches + point.errors == 40
    assert 10 <= point.errors <= 30  # about every second call
    assert point.requests_per_s > 0
