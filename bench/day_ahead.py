"""Day-ahead capacity plans, held out day by day: days 8-14, each fitted on the days before it.

For each simulated day D (and each rate scale) it fits on days 1..D-1 only and runs that day
through the simulator under:

- day-ahead: the plan ``nb2pipe plan --fit-days 1-(D-1)`` makes for day D (each interval: the
  99 % quantile of the same interval on the earlier days, times a headroom fitted by leaving
  the last of them out), replayed with each interval provisioned one cold start ahead;
- day-ahead+online: that plan as a floor, the online forecast (fitted on days 1..D-1 as
  ``nb2pipe plan --days`` fits it) above it, and the planner's surge check;
- day-ahead-median+online: the same with the median of the earlier days as the floor instead of
  their 99 % quantile;
- planner: the online planner alone, for comparison;
- oracle: the search fed the true peaks (the lower bound).

It prints replica-hours and SLO violations per day and policy and writes them as JSON. Target
(issue 21, item 4): violations <= 1 % on every day at x10.

    python -m bench.day_ahead [--days 8-14] [--scales 10] [--json bench/results/day_ahead.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from bench.planner import ROOT, add_world_arguments  # the same trace and profile as the planner bench

POLICIES = ("day-ahead", "day-ahead+online", "day-ahead-median+online", "planner", "oracle")
TARGET_PERCENT = 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_world_arguments(parser, scales=[10.0])
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "day_ahead.json"))
    args = parser.parse_args()

    from nb2pipe.capacity.policies import policy_named
    from nb2pipe.capacity.profile import read_profile
    from nb2pipe.capacity.scenario import Choices, fitted_forecaster, scenario_for
    from nb2pipe.capacity.simulate import simulate
    from nb2pipe.capacity.trace import DaySpan, read_trace

    profile = read_profile(args.profile)
    rates = read_trace(args.trace)
    policies = [p for p in args.policies.split(",") if p]
    span = DaySpan.parse(args.days)
    results: dict[str, object] = {
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()},
        "profile": args.profile,
        "slo_ms": args.slo_ms,
        "cold_start_s": args.cold_start_s,
        "fit": "each day on the days before it",
        "scales": {},
    }
    for scale in args.scales:
        per_day: dict[str, dict[str, object]] = {}
        print(f"\n== x{scale:g}: per day, fitted on the days before it (replica-hours / SLO violations %)")
        print(f"{'day':>4} " + " ".join(f"{p:>24}" for p in policies))
        for day in range(span.first, span.last + 1):
            choices = Choices(
                slo_ms=args.slo_ms,
                days=DaySpan(day, day),
                fit_days=DaySpan(1, day - 1),
                scale=scale,
                cold_start_s=args.cold_start_s,
            )
            scenario = scenario_for(profile, rates, choices, args.trace)
            started = time.perf_counter()
            forecaster = None
            if any(policy_named(p).needs_forecaster for p in policies):
                forecaster = fitted_forecaster(scenario, choices.violation_target)[0]
            reports = {p: simulate(scenario, p, forecaster) for p in policies}
            per_day[str(day)] = {
                p: {
                    "replica_hours": round(r.replica_hours, 2),
                    "violation_percent": round(r.violation_percent, 3),
                    "p99_ms": round(r.p99_ms, 1),
                    "accuracy": None if r.mean_accuracy is None else round(r.mean_accuracy, 4),
                    "forecast": r.settings.get("forecast"),
                }
                for p, r in reports.items()
            }
            cells = " ".join(f"{r.replica_hours:>14.1f} / {r.violation_percent:>6.2f}" for r in reports.values())
            print(f"{day:>4} {cells}   ({time.perf_counter() - started:.0f} s)", flush=True)
        summary = {p: _summary(per_day, p) for p in policies}
        for p, s in summary.items():
            print(
                f"  {p:<24} total {s['replica_hours']:.1f} replica-h, worst day {s['worst_violation_percent']:.2f} %, "
                f"days over {TARGET_PERCENT:g} %: {s['days_over_target']}"
            )
        results["scales"][f"x{scale:g}"] = {"days": per_day, "summary": summary}  # type: ignore[index]
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {out}")


def _summary(per_day: dict[str, dict[str, object]], policy: str) -> dict[str, object]:
    rows = [day[policy] for day in per_day.values()]
    violations = [float(r["violation_percent"]) for r in rows]  # type: ignore[index]
    return {
        "replica_hours": round(sum(float(r["replica_hours"]) for r in rows), 2),  # type: ignore[index]
        "worst_violation_percent": max(violations),
        "days_over_target": sum(v > TARGET_PERCENT for v in violations),
    }


if __name__ == "__main__":
    main()
