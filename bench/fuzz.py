"""Fuzzing the compiler at scale: N seeded mutants of the examples (tests/support/mutants.py), compiled
in-process and judged (tests/support/mutant_judge.py); prints how many compiled, failed with diagnostics
(by code) or crashed (by exception type and site), timing percentiles, and one mutant of each
failing class.

    python -m bench.fuzz [--count 6000] [--seed 20261204] [--workers 2] [--json OUT.json]
    python -m bench.fuzz --seed S --show N      # one mutant: its notebook, mutations and outcome
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

from tests.support.mutant_judge import Outcome, failure_report, run_many, run_mutant
from tests.support.mutants import make_mutant

ROOT = Path(__file__).resolve().parent.parent


def percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]


def summary(outcomes: list[Outcome], elapsed: float) -> dict[str, object]:
    seconds = sorted(o.seconds for o in outcomes)
    by_code = Counter(code for o in outcomes if o.status == "diagnostics" for code in set(o.codes))
    failures = Counter(o.failure for o in outcomes if o.status == "failure")
    return {
        "mutants": len(outcomes),
        "elapsed_s": round(elapsed, 2),
        "outcomes": dict(Counter(o.status for o in outcomes)),
        "file_edge": sum(o.file_edge for o in outcomes),
        "diagnostics_by_code": dict(by_code.most_common()),
        "failures_by_class": dict(failures.most_common()),
        "seconds": {
            "p50": round(statistics.median(seconds), 4),
            "p90": round(percentile(seconds, 0.90), 4),
            "p99": round(percentile(seconds, 0.99), 4),
            "max": round(seconds[-1], 4),
            "max_cpu": round(max(o.cpu_seconds for o in outcomes), 4),
            "slowest": [(o.number, round(o.seconds, 3)) for o in sorted(outcomes, key=lambda o: -o.seconds)[:5]],
        },
    }


def print_summary(figures: dict[str, object]) -> None:
    print(f"{figures['mutants']} mutants in {figures['elapsed_s']} s ({figures['file_edge']} through the file edge)")
    print(f"outcomes: {figures['outcomes']}")
    print(f"per mutant: {figures['seconds']}")
    print("mutants failing with each diagnostic code:")
    for code, count in figures["diagnostics_by_code"].items():  # type: ignore[attr-defined]
        print(f"  {count:6d}  {code}")


def show(seed: int, number: int) -> None:
    mutant = make_mutant(seed, number)
    print(mutant.describe(limit=10**7))
    with tempfile.TemporaryDirectory() as scratch:
        outcome = run_mutant(seed, number, Path(scratch))
    print(f"\noutcome: {outcome.status} in {outcome.seconds:.3f} s, codes {list(outcome.codes)}")
    if outcome.failure:
        print(f"failure: {outcome.failure}{outcome.detail.removeprefix(mutant.describe())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=6000, help="how many mutants (default 6000)")
    parser.add_argument("--seed", type=int, default=20261204, help="the seed (default: the test's)")
    parser.add_argument("--start", type=int, default=0, help="first mutant number")
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--examples", type=int, default=1, help="mutants shown per failing class")
    parser.add_argument("--json", metavar="OUT", help="also write the figures and failures as JSON")
    parser.add_argument("--show", type=int, metavar="N", help="show mutant N and what compiling it does")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # nbformat's upgrade warns about the cell ids of mangled old notebooks

    if args.show is not None:
        show(args.seed, args.show)
        return
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        outcomes = run_many(args.seed, list(range(args.start, args.start + args.count)), Path(scratch), args.workers)
        elapsed = time.perf_counter() - start
    figures = summary(outcomes, elapsed)
    print_summary(figures)
    report = failure_report(outcomes, args.examples)
    print("\n" + (report or "no failures"))
    if args.json:
        failures = [
            {"number": o.number, "failure": o.failure, "seconds": o.seconds, "detail": o.detail}
            for o in outcomes
            if o.status == "failure"
        ]
        Path(args.json).write_text(json.dumps({"seed": args.seed, **figures, "failures": failures}, indent=1))


if __name__ == "__main__":
    main()
