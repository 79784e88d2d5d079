"""The closed-loop autoscale benchmark (not in CI): a slice of the real trace replayed in real time
against a local serving group, scaled by (a) HPA-like reactive rules and (b) nb2pipe autoscale's
Controller, both reading the rate from a real Prometheus scraping the router; then the simulator on
the same slice with a profile measured here, and its error against what was measured.

Run: ``.venv/bin/python -m bench.autoscale [--seconds 900] [--start 55710] [--out bench/results/autoscale.json]``
(Debian's prometheus must be installed: ``make prometheus``). A run takes twice ``--seconds`` and ~3 minutes.

The model is ``bench.autoscale_model.SlowModel``, a pyfunc whose batch of n rows takes 20 ms + n x 20 ms
spent waiting: a CPU-bound model (a large random forest) saturates the 2 cores at ~1.5 replicas,
so the bench would measure the cores rather than the policies; this one lets the slice's peak need
~3 replicas at ~100 req/s, a rate the load generator and the router sustain here.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.autoscale_load import replay
from nb2pipe.capacity.autoscale import Controller, Loop, LoopSettings
from nb2pipe.capacity.control import Decision, VariantSetting
from nb2pipe.capacity.local_group import LocalGroup
from nb2pipe.capacity.local_prometheus import running_prometheus
from nb2pipe.capacity.plan import CapacityPlan, read_plan
from nb2pipe.capacity.policy_base import Reactive, Stabilizer
from nb2pipe.capacity.prometheus import PrometheusRateSource, arrivals_query
from nb2pipe.capacity.trace import DAY_S, read_trace

ROOT = Path(__file__).resolve().parent.parent
TRACE = ROOT.parent / "shared" / "data" / "twitter-trace-days01-14.txt"
SERVICE = "slow"
DAY = 14  # the slice comes from the last day; the plan's forecaster is fitted on the two before
#: simulate's reactive-batched settings: Kubernetes' HPA defaults, on requests/s
REACTIVE = Reactive(metric="rps")


def nb2pipe(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "nb2pipe", *args], check=True, env=env, cwd=ROOT)


def register_slow_model(work: Path) -> str:
    from sklearn.datasets import load_breast_cancer

    from bench.autoscale_model import SlowModel
    from nb2pipe.lifecycle.register import PromotionRule, Registration, register_model

    rows = load_breast_cancer().data[:200]
    registration = Registration(SERVICE, "bench", metrics={"accuracy": 1.0}, rule=PromotionRule("accuracy", True))
    return register_model(SlowModel(), rows, registration, store=work).uri


class Recorder:
    """An Actuator around the group that keeps (time, replicas running) for replica-seconds; while
    an apply runs, old and new replicas both run, so it counts the larger."""

    def __init__(self, group: LocalGroup) -> None:
        self.group = group
        self.steps: list[tuple[float, int]] = []
        self.decisions: list[dict[str, Any]] = []

    def current(self) -> tuple[VariantSetting, ...] | None:
        return self.group.current()

    def apply(self, decision: Decision) -> None:
        before = len(self.group.replicas)
        wanted = sum(s.replicas for s in decision.settings)
        self.steps.append((time.time(), max(before, wanted)))
        self.group.apply(decision)
        self.steps.append((time.time(), len(self.group.replicas)))
        self.decisions.append({**decision.to_json(), "applied_at": round(time.time(), 3)})

    def replica_seconds(self, begin: float, end: float) -> float:
        total, count, at = 0.0, 0, begin
        for when, replicas in self.steps:
            if when > begin:
                total += count * (min(when, end) - at)
                at = min(when, end)
            count = replicas
        return total + count * max(0.0, end - at)


def run_reactive(plan: CapacityPlan, recorder: Recorder, source: PrometheusRateSource, stop: threading.Event) -> None:
    """simulate's reactive-batched rules (its Stabilizer) acting on the local group."""
    option = plan.options[0]
    setting = plan_setting(plan)
    rules = Stabilizer(REACTIVE, REACTIVE.min_replicas, REACTIVE.max_replicas)
    rules.replicas = len(recorder.group.replicas)
    while not stop.wait(REACTIVE.period_s):
        rate = source.request_rate(REACTIVE.period_s)
        if rate is None:
            continue
        wanted = math.ceil(rate / (REACTIVE.target * option.rate_per_replica) - 1e-9)
        if rules.step(time.time(), wanted, wanted / max(rules.replicas, 1)):
            settings = (VariantSetting(option.name, rules.replicas, rules.replicas, setting[0], setting[1], 100),)
            recorder.apply(Decision(time.time(), rate, rate, settings, "reactive"))


def plan_setting(plan: CapacityPlan) -> tuple[int, int]:
    """The batcher the planner's search gives the variant (reactive-batched runs the same)."""
    option = plan.options[0]
    slack_ms = max(0.0, plan.slo_ms - option.service_p99_s * 1000.0)
    return option.batch_size, max(1, math.floor(slack_ms / 2))


def closed_loop(
    policy: str,
    plan: CapacityPlan,
    rates: np.ndarray,
    before: np.ndarray,
    trace_start_s: int,
    work: Path,
    env: dict[str, str],
) -> dict[str, Any]:
    """One real-time replay of ``rates`` (requests/s per second) under ``policy``."""
    folder = work / policy
    uri = plan.serving[0].model_uri or ""
    with LocalGroup(SERVICE, {plan.options[0].name: uri}, folder, environment=env) as group:
        recorder = Recorder(group)
        with running_prometheus([group.url.removeprefix("http://")], folder / "prometheus") as prometheus:
            prometheus.wait_for_targets(30)
            source = PrometheusRateSource(prometheus.url, arrivals_query([SERVICE]))
            stop = threading.Event()
            if policy == "reactive":
                opening = float(rates[:60].mean())
                first = max(1, math.ceil(opening / (plan.options[0].rate_per_replica * REACTIVE.target)))
                batch, latency = plan_setting(plan)
                recorder.apply(
                    Decision(
                        time.time(),
                        None,
                        opening,
                        (VariantSetting(SERVICE, first, first, batch, latency, 100),),
                        "start",
                    )
                )
                worker = threading.Thread(target=run_reactive, args=(plan, recorder, source, stop), daemon=True)
            else:
                t0 = time.time()

                def clock() -> float:  # trace time: the forecaster's phases are the trace's time of day
                    return trace_start_s + (time.time() - t0)

                controller = Controller(plan, LoopSettings(step_s=5.0, rate_window_s=15.0, stale_after_s=10.0))
                controller.seed([float(r) for r in before], clock(), 1.0)  # as if it had run before the slice
                loop = Loop(controller, source, recorder, clock=clock, sleep=stop.wait, log=lambda d: None)
                loop.start()
                loop.turn()  # the first decision is in place before the load begins
                worker = threading.Thread(target=loop.go_on, kwargs={"until": stop.is_set}, daemon=True)
            worker.start()
            begin = time.time()
            results = replay(group.url, SERVICE, rates)
            end = time.time()
            stop.set()
            worker.join(120)
    latencies = np.array([r[1] for r in results])
    ok = np.array([r[2] == 200 for r in results])
    slo_s = plan.slo_ms / 1000.0
    violations = float(np.mean((latencies > slo_s) | ~ok)) if results else 0.0
    return {
        "policy": policy,
        "requests": len(results),
        "errors": int((~ok).sum()),
        "violation_percent": round(100 * violations, 3),
        "p99_ms": round(float(np.percentile(latencies, 99)) * 1000, 1) if results else None,
        "replica_seconds": round(recorder.replica_seconds(begin, end), 1),
        "seconds": round(end - begin, 1),
        "decisions": recorder.decisions,
    }


def simulated(
    plan: CapacityPlan, profile_path: Path, rates: np.ndarray, history: np.ndarray, start_s: int
) -> dict[str, Any]:
    """The simulator on the same seconds: reactive-batched and the online planner (what autoscale runs)."""
    from nb2pipe.capacity.profile import read_profile
    from nb2pipe.capacity.scenario import Choices, prepared_profile
    from nb2pipe.capacity.simulate import Scenario, simulate

    choices = Choices(slo_ms=plan.slo_ms, cold_start_s=plan.cold_start_s, interval_s=plan.interval_s)
    profile = prepared_profile(read_profile(profile_path), choices)
    scenario = Scenario(
        rates,
        history,
        profile,
        plan.options,
        plan.options[0],
        plan.slo_ms,
        plan.cold_start_s,
        plan.interval_s,
        plan=plan,
        start_s=start_s,
    )
    reports = {}
    for name, policy in (("reactive", "reactive-batched"), ("autoscale", "planner")):
        report = simulate(scenario, policy, forecaster=plan.online)
        reports[name] = {
            "violation_percent": round(report.violation_percent, 3),
            "p99_ms": round(report.p99_ms, 1),
            "replica_seconds": round(report.replica_hours * 3600, 1),
        }
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=900, help="length of the replayed slice (real time)")
    parser.add_argument(
        "--start",
        type=int,
        default=55710,
        help="the slice's first second in the day (default 15:28:30, a minute before the day's sharpest burst)",
    )
    parser.add_argument("--slo-ms", type=float, default=250.0)
    parser.add_argument("--peak-replicas", type=float, default=3.0, help="the slice's peak needs this many replicas")
    parser.add_argument("--cold-start-s", type=float, default=8.0, help="what a local replica takes to be ready")
    parser.add_argument("--interval-s", type=int, default=30)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "autoscale.json")
    parser.add_argument("--work", type=Path, default=ROOT / ".nb2pipe" / "bench-autoscale")
    args = parser.parse_args(argv)
    if not 0 <= args.start <= DAY_S - args.seconds:
        parser.error(f"--start {args.start} with --seconds {args.seconds} runs past the day")
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    # the replicas unpickle bench.autoscale_model.SlowModel: they import it from this checkout
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}", "PYTHONPATH": path}
    os.environ["MLFLOW_TRACKING_URI"] = env["MLFLOW_TRACKING_URI"]
    started = time.time()

    uri = register_slow_model(work)
    profile = work / "profile.json"
    nb2pipe(
        "profile",
        f"{SERVICE}={uri}",
        "--batch-sizes",
        "1,4,8",
        "--concurrency",
        "1,4",
        "--requests",
        "100",
        "--slo-ms",
        str(args.slo_ms),
        "-o",
        str(profile),
        env=env,
    )
    trace = read_trace(TRACE)
    day = trace[(DAY - 1) * DAY_S : DAY * DAY_S]
    start = args.start
    raw = day[start : start + args.seconds]
    # the scale: the slice's peak needs --peak-replicas replicas of the profiled rate under the SLO
    from nb2pipe.capacity.model import options_for
    from nb2pipe.capacity.profile import read_profile

    per_replica = options_for(read_profile(profile), args.slo_ms)[0].rate_per_replica
    scale = args.peak_replicas * per_replica / float(raw.max())
    plan_path = work / "plan.json"
    nb2pipe(
        "plan",
        "--profile",
        str(profile),
        "--trace",
        str(TRACE),
        "--slo-ms",
        str(args.slo_ms),
        "--days",
        f"{DAY}-{DAY}",
        "--fit-days",
        f"{DAY - 3}-{DAY - 1}",
        "--scale",
        f"{scale:.6g}",
        "--cold-start-s",
        str(args.cold_start_s),
        "--interval-s",
        str(args.interval_s),
        "-o",
        str(plan_path),
        env=env,
    )
    plan = read_plan(plan_path)
    rates = raw * scale
    trace_start = (DAY - 1) * DAY_S + start
    assert plan.online is not None
    lookback = plan.online.window_s + int(plan.cold_start_s) + 2 * plan.interval_s + 60
    before = trace[trace_start - lookback : trace_start] * scale
    print(
        f"slice: day {DAY} {start // 3600:02d}:{start % 3600 // 60:02d}, {args.seconds} s, scale {scale:.4g} "
        f"({rates.mean():.1f} req/s mean, {rates.max():.1f} peak); {per_replica:.1f} req/s a replica",
        flush=True,
    )

    measured = {
        policy: closed_loop(policy, plan, rates, before, trace_start, work, env) for policy in ("reactive", "autoscale")
    }
    history = trace[(DAY - 4) * DAY_S : trace_start] * scale
    predicted = simulated(plan, profile, rates, history, trace_start)
    error = {
        name: {
            "replica_seconds_percent": round(
                100 * (predicted[name]["replica_seconds"] / max(measured[name]["replica_seconds"], 1e-9) - 1), 1
            ),
            "violation_points": round(predicted[name]["violation_percent"] - measured[name]["violation_percent"], 2),
        }
        for name in measured
    }
    result = {
        "model": "bench.autoscale_model.SlowModel: 20 ms + 20 ms a row, waiting",
        "slice": {"day": DAY, "start_s": start, "seconds": args.seconds, "scale": scale, "time_compression": 1.0},
        "slo_ms": args.slo_ms,
        "rate_per_replica": per_replica,
        "plan": {
            "batch_size": plan.options[0].batch_size,
            "cold_start_s": plan.cold_start_s,
            "interval_s": plan.interval_s,
        },
        "measured": measured,
        "simulated": predicted,
        "simulator_error": error,
        "wall_s": round(time.time() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for name in measured:
        m, p = measured[name], predicted[name]
        print(
            f"{name:9s} measured: {m['violation_percent']:6.2f} % over SLO, p99 {m['p99_ms']} ms, "
            f"{m['replica_seconds']:.0f} replica-s | simulated: {p['violation_percent']:.2f} %, "
            f"{p['replica_seconds']:.0f} replica-s | error {error[name]}"
        )
    print(f"written {args.out} ({result['wall_s']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
