"""``nb2pipe autoscale --local``: the loop on this machine, end to end. A tiny online plan of a
real registered model; the command starts the router, the replicas and Debian's Prometheus,
decides from the rate requests sent through the router produce, and leaves nothing running when
it ends (after its turns, or on SIGTERM)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from nb2pipe.capacity.forecast import OnlineForecaster
from nb2pipe.capacity.local_prometheus import binary
from nb2pipe.capacity.model import VariantOption
from nb2pipe.capacity.optimize import Optimizer
from nb2pipe.capacity.plan import build_plan, write_plan
from nb2pipe.processes import stop_group
from tests.support.registered import RegisteredModel

ROUTER = re.compile(r"router: (http://127\.0\.0\.1:\d+)")


def tiny_plan(path: Path, model_uri: str) -> Path:
    """One variant carrying 10 req/s a replica; a 30 s forecaster with no headroom."""
    option = VariantOption("small", None, 4, 10.0, 0.05, model_uri)
    forecaster = OnlineForecaster(30, 30, 60, 0, (1.0,), 1.0, 0.99, "peak")
    plan = build_plan(
        [5.0, 5.0],
        0,
        Optimizer((option,), 1.0),
        slo_ms=500.0,
        interval_s=30,
        cold_start_s=5.0,
        price_per_replica_hour=1.0,
        forecast={"method": "online"},
        online=forecaster,
    )
    return write_plan(path, plan)


def processes_under(folder: Path) -> list[int]:
    """PIDs of live processes working in ``folder`` or naming it on their command line."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            command = (entry / "cmdline").read_bytes().decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and (cwd.startswith(str(folder)) or str(folder) in command):
            found.append(int(entry.name))
    return found


@contextmanager
def autoscale(tmp_path: Path, registered: RegisteredModel, *extra: str) -> Iterator[subprocess.Popen[str]]:
    plan = tiny_plan(tmp_path / "plan.json", registered.model_uri)
    command = [sys.executable, "-m", "nb2pipe", "autoscale", "svc", "--plan", str(plan), "--local"]
    command += ["--workdir", str(tmp_path / "work"), "--interval", "4", "--rate-window", "4", *extra]
    environment = {**os.environ, "MLFLOW_TRACKING_URI": registered.tracking_uri}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment, start_new_session=True
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            stop_group(process.pid, 20.0)


def router_url(process: subprocess.Popen[str], seconds: float = 120.0) -> str:
    assert process.stderr is not None
    deadline = time.monotonic() + seconds
    seen = []
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        seen.append(line)
        match = ROUTER.search(line)
        if match:
            return match.group(1)
    pytest.fail("no router URL on stderr:\n" + "".join(seen))


@contextmanager
def requests_to(url: str, rows: list[list[float]], rps: float) -> Iterator[list[tuple[float, int]]]:
    """A background client posting ``rps`` predict calls a second, keeping (when sent, status)."""
    statuses: list[tuple[float, int]] = []
    stop = threading.Event()

    def send() -> None:
        body = json.dumps({"instances": rows}).encode()
        while not stop.is_set():
            request = urllib.request.Request(f"{url}/v1/models/svc:predict", body, {"Content-Type": "application/json"})
            sent = time.time()
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    statuses.append((sent, response.status))
            except OSError as exc:
                statuses.append((sent, getattr(exc, "code", 0)))
            stop.wait(1.0 / rps)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    try:
        yield statuses
    finally:
        stop.set()
        thread.join(30)


def needs_prometheus() -> None:
    if binary() is None:
        pytest.fail("no prometheus binary: run `make prometheus` (Debian's package)")


@pytest.mark.slow
def test_local_autoscale_decides_from_the_routers_rate_and_leaves_nothing(
    tmp_path: Path, registered_model: RegisteredModel
) -> None:
    needs_prometheus()
    rows = registered_model.features.iloc[:2].values.tolist()
    with autoscale(tmp_path, registered_model, "--turns", "3") as process:
        url = router_url(process)
        # the first turn (no rate yet) starts the plan's floor; requests then flow through the router
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.5)
        with requests_to(url, rows, rps=8) as statuses:
            stdout, stderr = process.communicate(timeout=180)
    assert process.returncode == 0, stderr
    decisions = [json.loads(line) for line in stdout.splitlines()]
    assert len(decisions) == 3
    assert all(d["settings"][0]["variant"] == "small" and d["settings"][0]["replicas"] >= 1 for d in decisions)
    assert decisions[0]["fallback"] is True  # nothing was sent before the first turn
    assert decisions[-1]["observed_rps"] is not None and decisions[-1]["observed_rps"] > 1.0, decisions
    # every request sent before the last decision was answered (after it, the command stops the group)
    before_the_end = [status for sent, status in statuses if sent < decisions[-1]["at"]]
    assert len(before_the_end) > 10 and set(before_the_end) == {200}, statuses
    assert not processes_under(tmp_path / "work")  # replicas and Prometheus stopped
    assert (tmp_path / "work" / "autoscale" / "svc" / "prometheus" / "prometheus.yml").is_file()


@pytest.mark.slow
def test_sigterm_stops_replicas_router_and_prometheus(tmp_path: Path, registered_model: RegisteredModel) -> None:
    needs_prometheus()
    with autoscale(tmp_path, registered_model) as process:
        url = router_url(process)
        assert process.stdout is not None
        first = process.stdout.readline()  # the first decision is applied before it is logged
        assert json.loads(first)["settings"][0]["replicas"] >= 1
        assert processes_under(tmp_path / "work"), "nothing ran under the workdir"
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM
    assert not processes_under(tmp_path / "work")
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/metrics", timeout=2)


def test_local_without_prometheus_names_the_package(
    tmp_path: Path,
    registered_model: RegisteredModel,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from nb2pipe.cli.main import main

    plan = tiny_plan(tmp_path / "plan.json", registered_model.model_uri)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("nb2pipe.capacity.local_prometheus.DEBIAN_BINARY", str(tmp_path / "none"))
    code = main(["autoscale", "svc", "--plan", str(plan), "--local", "--workdir", str(tmp_path / "w"), "--once"])
    assert code != 0
    assert "apt-get install prometheus" in capsys.readouterr().err
    assert not (tmp_path / "w" / "autoscale").exists()  # refused before anything started


def test_a_cluster_run_needs_a_prometheus_url(
    tmp_path: Path, registered_model: RegisteredModel, capsys: pytest.CaptureFixture[str]
) -> None:
    from nb2pipe.cli.main import main

    plan = tiny_plan(tmp_path / "plan.json", registered_model.model_uri)
    assert main(["autoscale", "svc", "--plan", str(plan), "--once"]) != 0
    assert "--prometheus-url is required" in capsys.readouterr().err
