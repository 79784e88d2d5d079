"""``nb2pipe simulate`` and ``nb2pipe plan`` as a user runs them: separate processes on the real
trace (day 8 only, fitted on days 1-7), their refusals, and a --help that loads no numerics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from nb2pipe.capacity.autoscale import Controller
from nb2pipe.capacity.plan import read_plan
from nb2pipe.capacity.profile import write_profile
from nb2pipe.capacity.trace import DAY_S, DaySpan, read_trace, select_days
from tests.support.capacity_profiles import synthetic_profile

ROOT = Path(__file__).resolve().parents[1]
TRACE = ROOT.parent / "shared" / "data" / "twitter-trace-days01-14.txt"
CLI_TIMEOUT_S = 300
HEAVY_MODULES = ("numba", "numpy", "scipy", "pandas", "mlflow", "kserve", "nb2pipe.capacity.engine")


def nb2pipe_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "nb2pipe", *arguments]


def run_cli(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        nb2pipe_command(*arguments), capture_output=True, text=True, cwd=cwd, timeout=CLI_TIMEOUT_S, check=False
    )


@dataclass(frozen=True)
class Runs:
    folder: Path
    profile: Path
    plan: Path
    simulate: subprocess.CompletedProcess[str]
    planned: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    """``nb2pipe simulate`` and ``nb2pipe plan`` on day 8, started together (each takes seconds)."""
    if not TRACE.is_file():
        pytest.skip(f"{TRACE} is not here")
    folder = tmp_path_factory.mktemp("capacity-cli")
    profile = write_profile(folder / "profile.json", synthetic_profile())
    plan = folder / "plan.json"
    world = ["--profile", str(profile), "--trace", str(TRACE), "--slo-ms", "150", "--days", "8"]
    commands = {
        "simulate": nb2pipe_command("simulate", *world, "--fit-days", "1-7", "--policy", "reactive,planner", "--json"),
        "plan": nb2pipe_command("plan", *world, "-o", str(plan)),
    }
    started = {
        name: subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=folder)
        for name, command in commands.items()
    }
    done: dict[str, subprocess.CompletedProcess[str]] = {}
    try:
        for name, process in started.items():
            stdout, stderr = process.communicate(timeout=CLI_TIMEOUT_S)
            done[name] = subprocess.CompletedProcess(commands[name], process.returncode, stdout, stderr)
    finally:
        for process in started.values():
            if process.poll() is None:
                process.kill()
                process.communicate()
    yield Runs(folder, profile, plan, done["simulate"], done["plan"])


@pytest.fixture(scope="module")
def day8() -> np.ndarray:
    return select_days(read_trace(TRACE), DaySpan(8, 8))


@pytest.mark.slow
def test_simulate_reports_both_policies_on_the_same_requests(runs: Runs, day8: np.ndarray) -> None:
    assert runs.simulate.returncode == 0, runs.simulate.stderr
    reports = json.loads(runs.simulate.stdout)
    assert [r["policy"] for r in reports] == ["reactive", "planner"]
    reactive, planner = reports
    # the same seeded Poisson arrivals: as many requests for both, about the trace's day-8 total
    assert reactive["requests"] == planner["requests"] > 0
    assert reactive["requests"] == pytest.approx(day8.sum(), rel=0.005)
    for report in reports:
        assert report["seconds"] == DAY_S
        assert report["cost"] > 0
        assert report["replica_hours"] > 0
        assert report["cost"] == pytest.approx(report["replica_hours"] * 1.0, rel=1e-5)  # price 1 per replica-hour
        assert 0.0 <= report["violation_percent"] <= 100.0
        assert report["p99_ms"] > 0 and report["mean_latency_ms"] > 0
        assert 0.90 <= report["mean_accuracy"] <= 0.95
        assert report["reconfigurations"] >= 0
    # reactive runs the baseline: the most accurate variant alone
    assert reactive["mean_accuracy"] == pytest.approx(0.95)
    # the planner sizes every interval for the SLO ahead of time
    assert planner["violation_percent"] < 1.0
    # each run says what it ran with, and how it compares with the reactive run
    assert (reactive["settings"]["variant"], reactive["settings"]["batch_size"]) == ("large", 1)
    assert planner["settings"]["forecast"]["method"] == "online"
    assert reactive["settings"]["world"]["start_s"] == 7 * DAY_S
    assert reactive["relative_to"]["run"] == "reactive" and reactive["relative_to"]["cost"] == 1.0
    assert planner["relative_to"]["cost"] == pytest.approx(planner["cost"] / reactive["cost"], abs=1e-6)
    # fitting the forecast takes seconds: it says so on stderr, and stdout stays JSON
    assert "nb2pipe: fitting the online forecast: done in" in runs.simulate.stderr


@pytest.mark.slow
def test_simulate_replays_the_plan_and_compares_to_a_named_run(runs: Runs) -> None:
    assert runs.planned.returncode == 0, runs.planned.stderr
    world = ["--profile", str(runs.profile), "--trace", str(TRACE), "--slo-ms", "150"]
    policies = ["--policy", "reactive-batched,plan", "--compare-to", "reactive-batched"]
    done = run_cli("simulate", *world, "--plan", str(runs.plan), *policies, cwd=runs.folder)
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line.split() for line in done.stdout.splitlines()[1:3]}
    assert set(rows) == {"reactive-batched", "plan"}
    assert rows["reactive-batched"][2] == "1"  # the x cost column of the run compared to
    assert "x: relative to reactive-batched" in done.stdout
    assert "warning" not in done.stderr  # the plan was made for this SLO, cold start and scale
    as_json = run_cli("simulate", *world, "--plan", str(runs.plan), "--policy", "plan", "--json", cwd=runs.folder)
    (replayed,) = json.loads(as_json.stdout)
    assert replayed["settings"]["world"]["start_s"] == 7 * DAY_S  # the plan's day 8, without --days
    assert replayed["settings"]["forecast"]["days"] == "8"
    assert 0.90 <= replayed["mean_accuracy"] <= 0.95
    slower = run_cli("simulate", *world[:-1], "200", "--plan", str(runs.plan), "--json", cwd=runs.folder)
    assert slower.returncode == 0, slower.stderr
    assert f"warning: {runs.plan} was made for --slo-ms 150; this simulation uses 200" in slower.stderr


@pytest.mark.slow
def test_plan_writes_a_plan_that_read_plan_accepts(runs: Runs) -> None:
    assert runs.planned.returncode == 0, runs.planned.stderr
    assert f"wrote {runs.plan}" in runs.planned.stdout
    assert "2880 intervals of 30 s" in runs.planned.stdout
    plan = read_plan(runs.plan)
    assert plan.slo_ms == 150.0
    assert [i.start_s for i in plan.intervals] == list(range(7 * DAY_S, 8 * DAY_S, 30))
    # the fit defaults to every day before --days
    assert (plan.forecast["fit_days"], plan.forecast["days"]) == ("1-7", "8")
    assert sum(s.traffic_percent for s in plan.serving) == 100
    rates = {o.name: o.rate_per_replica for o in plan.options}
    for interval in plan.intervals:
        capacity = sum(s.replicas * rates[s.variant] for s in interval.allocation.shares)
        assert capacity >= interval.forecast_rps
    for serving in plan.serving:
        counts = [i.allocation.replicas_of(serving.variant) for i in plan.intervals]
        assert (serving.min_replicas, serving.max_replicas) == (min(counts), max(counts))
    # every variant line of the table is printed
    for serving in plan.serving:
        assert any(line.startswith(serving.variant) for line in runs.planned.stdout.splitlines())


@pytest.mark.slow
def test_a_day_ahead_plan_with_online_carries_what_autoscale_runs(tmp_path: Path) -> None:
    profile = write_profile(tmp_path / "profile.json", synthetic_profile())
    world = ["plan", "--profile", str(profile), "--trace", str(TRACE), "--slo-ms", "150", "-o", "plan.json"]
    done = run_cli(*world, "--fit-days", "5-7", "--online", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    plan = read_plan(tmp_path / "plan.json")
    assert plan.forecast["method"] == "day-ahead" and plan.forecast["day"] == 8
    assert plan.online is not None and plan.forecast["online"] == plan.online.describe()
    assert [i.start_s for i in plan.intervals] == list(range(7 * DAY_S, 8 * DAY_S, 30))
    # autoscale runs it: the plan's forecast by time of day under the online forecaster it carries
    controller = Controller(plan)
    assert controller.forecaster == plan.online
    assert controller.day_ahead == tuple(i.forecast_rps for i in plan.intervals)
    # two fit days cannot both choose the forecast and fit it
    short = run_cli(*world, "--fit-days", "6-7", "--online", cwd=tmp_path)
    assert short.returncode == 1
    assert "needs at least 3 fit days (days 6-7 are 2; give --fit-days)" in short.stderr
    assert "Traceback" not in short.stderr


def test_a_misspelt_policy_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    profile = write_profile(tmp_path / "profile.json", synthetic_profile())
    world = ["--profile", str(profile), "--trace", str(TRACE), "--slo-ms", "150"]
    done = run_cli("simulate", *world, "--policy", "planer", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "no policy named 'planer'" in done.stderr
    assert "did you mean 'planner'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--policy", "plan"], "the plan policy replays a plan: give --plan PLAN.json"),
        (["--policy", "static,deployed"], "the deployed policy replays a plan: give --plan PLAN.json"),
        (["--plan", "p.json", "--policy", "reactive"], "--plan is replayed by the plan and deployed policies"),
        (["--policy", "reactive,static,reactive"], "--policy lists reactive more than once"),
        (["--policy", "static", "--compare-to", "oracle"], "--compare-to 'oracle' is not one of the runs (static)"),
    ],
)
def test_simulate_refuses_runs_that_cannot_be_told_apart_or_replayed(
    tmp_path: Path, arguments: list[str], message: str
) -> None:
    world = ["--profile", "gone.json", "--trace", "gone.txt", "--slo-ms", "150"]
    done = run_cli("simulate", *world, *arguments, cwd=tmp_path)
    assert done.returncode == 1
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_plan_refuses_a_bad_day_span(tmp_path: Path) -> None:
    profile = write_profile(tmp_path / "profile.json", synthetic_profile())
    done = run_cli(
        "plan", "--profile", str(profile), "--trace", str(TRACE), "--slo-ms", "150", "--days", "9-3", cwd=tmp_path
    )
    assert done.returncode == 1
    assert "--days '9-3'" in done.stderr
    assert "Traceback" not in done.stderr


HELP_PROBE = textwrap.dedent(
    """
    import contextlib, io, json, sys
    from nb2pipe.cli import main
    shown = io.StringIO()
    with contextlib.redirect_stdout(shown):
        try:
            code = main(sys.argv[1:])
        except SystemExit as exc:
            code = exc.code
    heavy = [m for m in {heavy!r} if m in sys.modules]
    print(json.dumps({{"code": code, "help": shown.getvalue(), "heavy": heavy}}))
    """
).format(heavy=HEAVY_MODULES)


@pytest.mark.parametrize("argv", [["--help"], ["plan", "--help"], ["simulate", "--help"]])
def test_help_loads_no_numerics(argv: list[str], tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", HELP_PROBE, *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["code"] == 0
    assert outcome["heavy"] == []
    assert "usage: nb2pipe" in outcome["help"]
    if argv[0] == "plan":
        assert "--slo-ms" in outcome["help"] and "--days" in outcome["help"]
    if argv[0] == "--help":
        assert "plan" in outcome["help"] and "simulate" in outcome["help"]
