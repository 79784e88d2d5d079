"""Capacity planning on the Twitter trace: days 8-14, everything fitted on days 1-7.

For each rate (the trace's, and x10) it fits the planner's forecaster on days 1-7 (every
candidate's held-out figures are printed: the chosen one is the cheapest within the miss
budget), then simulates a week of days 8-14 under each policy:

- static: the baseline configuration (most accurate variant, batch size 1: KServe with no
  batcher) sized for the peak of days 1-7;
- reactive: the same configuration under an HPA-like autoscaler (utilization target 70 %,
  15 s period, 10 % tolerance, 5 min scale-down window, the same cold start);
- reactive-batched: the reactive policy given the planner's best variant batch size and an
  rps metric (utilization saturates once a replica batches), to show what planning adds
  beyond batching;
- planner: nb2pipe's forecast + exact search per 30 s interval;
- oracle: the same search fed the true peaks.

Acceptance (issue 7): planner cost <= 0.6 x reactive with SLO violations <= 1 % and <=
reactive's, and cost <= 1.2 x oracle's. Misses are reported, not errors (exit status 0).

    python -m bench.planner [--profile tests/data/digits_forests.profile.json] [--slo-ms 150]
                            [--scales 1 10] [--cold-start-s 30] [--json bench/results/planner.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRACE = ROOT.parent / "shared" / "data" / "twitter-trace-days01-14.txt"
PROFILE = ROOT / "tests" / "data" / "digits_forests.profile.json"


def add_world_arguments(parser: argparse.ArgumentParser, scales: list[float]) -> None:
    """The world the capacity benches simulate: profile, trace, SLO, cold start, load scales, days."""
    parser.add_argument("--profile", default=str(PROFILE))
    parser.add_argument("--trace", default=str(TRACE))
    parser.add_argument("--slo-ms", type=float, default=150.0)
    parser.add_argument("--cold-start-s", type=float, default=30.0)
    parser.add_argument("--scales", type=float, nargs="+", default=scales)
    parser.add_argument("--days", default="8-14")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_world_arguments(parser, scales=[1.0, 10.0])
    parser.add_argument("--fit-days", default="1-7")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "planner.json"))
    args = parser.parse_args()

    from nb2pipe.capacity.profile import read_profile
    from nb2pipe.capacity.scenario import Choices, fitted_forecaster, scenario_for
    from nb2pipe.capacity.simulate import simulate
    from nb2pipe.capacity.trace import DaySpan, read_trace

    profile = read_profile(args.profile)
    rates = read_trace(args.trace)
    results: dict[str, object] = {
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()},
        "profile": args.profile,
        "slo_ms": args.slo_ms,
        "cold_start_s": args.cold_start_s,
        "days": args.days,
        "fit_days": args.fit_days,
        "scales": {},
    }
    for scale in args.scales:
        choices = Choices(
            slo_ms=args.slo_ms,
            days=DaySpan.parse(args.days),
            fit_days=DaySpan.parse(args.fit_days),
            scale=scale,
            cold_start_s=args.cold_start_s,
        )
        scenario = scenario_for(profile, rates, choices, args.trace)
        started = time.perf_counter()
        forecaster, candidates, trials = fitted_forecaster(scenario, choices.violation_target)
        fit_s = time.perf_counter() - started
        print(f"\n== rate x{scale:g}: forecaster fitted on days {args.fit_days} in {fit_s:.1f} s")
        print(f"chosen: {forecaster.describe()}")
        print("shortlist, simulated as the planner on the history's last 2 days (fitted on the days before):")
        print(f"{'stat':>5} {'window s':>8} {'period s':>8} {'quantile':>8} {'missed %':>9} {'mean fc':>8} ", end="")
        print(f"{'cost':>8} {'SLO viol %':>10}")
        for t in trials:
            c = t.candidate
            print(
                f"{c.statistic:>5} {c.window_s:>8} {c.period_s:>8} {c.quantile:>8} {100 * c.missed:>9.3f} "
                f"{c.mean_forecast:>8.1f} {t.cost:>8.1f} {t.violation_percent:>10.3f}"
            )
        # reactive-batched: the baseline variant at the planner's batch size, scaling on requests/s
        reports = {
            name: simulate(scenario, name, forecaster if name == "planner" else None)
            for name in ("static", "reactive", "reactive-batched", "planner", "oracle")
        }
        print_table(scale, reports)
        verdict = acceptance(reports)
        for line in verdict["lines"]:
            print(line)
        results["scales"][f"x{scale:g}"] = {  # type: ignore[index]
            "forecaster": forecaster.describe(),
            "fit_s": round(fit_s, 2),
            "candidates": [vars(c) for c in candidates],
            "trials": [dict(vars(t.candidate), cost=t.cost, violation_percent=t.violation_percent) for t in trials],
            "reports": {k: r.to_json() for k, r in reports.items()},
            "acceptance": verdict["checks"],
        }
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {out}")


def print_table(scale: float, reports: dict) -> None:
    print(f"\ndays 8-14 at x{scale:g}")
    header = f"{'policy':<17} {'cost':>9} {'vs reactive':>11} {'vs oracle':>9} {'SLO viol %':>10} {'p99 ms':>9}"
    print(header + f" {'accuracy':>8} {'reconf':>7} {'sim s':>6}")
    reactive, oracle = reports["reactive"].cost, reports["oracle"].cost
    for name, r in reports.items():
        accuracy = f"{r.mean_accuracy:.4f}" if r.mean_accuracy is not None else "-"
        print(
            f"{name:<17} {r.cost:>9.1f} {r.cost / reactive:>11.3f} {r.cost / oracle:>9.3f} "
            f"{r.violation_percent:>10.3f} {r.p99_ms:>9.1f} {accuracy:>8} {r.reconfigurations:>7} {r.wall_s:>6.1f}"
        )


def acceptance(reports: dict) -> dict:
    planner, reactive, oracle = reports["planner"], reports["reactive"], reports["oracle"]
    checks = {
        "cost <= 0.6 x reactive": planner.cost <= 0.6 * reactive.cost,
        "violations <= 1 %": planner.violation_percent <= 1.0,
        "violations <= reactive's": planner.violation_percent <= reactive.violation_percent,
        "cost <= 1.2 x oracle": planner.cost <= 1.2 * oracle.cost,
    }
    lines = [f"  {'met' if ok else 'MISSED'}: {name}" for name, ok in checks.items()]
    return {"checks": checks, "lines": lines}


if __name__ == "__main__":
    main()
