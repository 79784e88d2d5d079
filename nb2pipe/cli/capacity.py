"""``nb2pipe plan`` and ``nb2pipe simulate``: argv -> one library call each.

numpy and the simulator (numba) load inside the handlers, so ``nb2pipe --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING

from nb2pipe.cli.args import INT32_MAX, SEED_MAX, add_json, integer, non_empty, real
from nb2pipe.errors import Nb2PipeError
from nb2pipe.files import check_outputs

if TYPE_CHECKING:
    from nb2pipe.capacity.plan import CapacityPlan
    from nb2pipe.capacity.scenario import Choices
    from nb2pipe.capacity.simulate import Report
    from nb2pipe.cli.args import Commands

#: runs shorter than this say nothing; longer ones say how far they got this often (s)
PROGRESS_AFTER_S = 3.0
PROGRESS_EVERY_S = 10.0
#: the policies that replay --plan
PLAN_POLICIES = ("plan", "deployed")


def add_commands(commands: Commands) -> None:
    plan = commands.add_parser(
        "plan",
        help="plan serving capacity from a latency profile and a load trace",
        description="Forecast each interval's peak load from a trace and choose replicas, batch size and (with "
        "several variants) the variants and traffic split that maximise accuracy minus cost with p99 <= the SLO. "
        "Without --days it plans the day after the trace (a day-ahead forecast); with --days it plans those days "
        "as the online planner would, each forecast made one cold start ahead from the load seen until then.",
    )
    _add_world(plan)
    plan.add_argument(
        "-o", "--output", metavar="PLAN.json", type=non_empty, help="write the plan (nb2pipe deploy --plan reads it)"
    )
    plan.add_argument(
        "--online",
        action="store_true",
        help="with a day-ahead plan (no --days): also fit the online forecaster on the same days (the last two "
        "held out to choose it; takes longer), so that nb2pipe autoscale can run the plan, its forecast as a "
        "floor under the online forecast and the surge check",
    )
    add_json(plan, "print the plan as JSON")
    plan.set_defaults(handler=_plan)

    simulate = commands.add_parser(
        "simulate",
        help="replay a trace through a simulated replica pool under scaling policies",
        description="Trace-driven discrete-event simulation: Poisson arrivals at each second's rate, the "
        "profile's service times, dynamic batching, queueing and cold starts. Policies: static (baseline sized "
        "for the history's peak), reactive (HPA-like), reactive-batched (the same at the planner's batch size, "
        "on requests/s), planner (nb2pipe's plan), oracle (knows the future), plan (replays --plan's schedule), "
        "deployed (what deploy --plan deploys from it: a fixed split, autoscaled within its bounds). "
        "Runs taking more than a few seconds say how far they got on stderr.",
    )
    _add_world(simulate)
    simulate.add_argument(
        "--policy",
        help="policy or comma-separated policies (static, reactive, reactive-batched, planner, oracle, plan, "
        "deployed); default reactive,planner (with --plan: reactive,plan,deployed)",
    )
    simulate.add_argument(
        "--plan",
        metavar="PLAN.json",
        type=non_empty,
        help="a plan from nb2pipe plan -o, replayed by the plan and deployed policies (default --days: the plan's)",
    )
    simulate.add_argument(
        "--compare-to",
        metavar="POLICY",
        help="the run the table's ratios are relative to (default: reactive if run, else the first)",
    )
    simulate.add_argument(
        "--baseline-variant", metavar="NAME", help="static/reactive's variant (default: most accurate)"
    )
    simulate.add_argument(
        "--baseline-batch",
        type=integer(1, INT32_MAX),
        default=1,
        metavar="N",
        help="static/reactive's batch size (default 1: no batcher)",
    )
    simulate.add_argument(
        "--reactive-metric",
        choices=("utilization", "rps"),
        default="utilization",
        help="what the reactive policy watches",
    )
    simulate.add_argument(
        "--reactive-target", type=real(), default=0.7, help="target utilization (or share of the SLO rate, for rps)"
    )
    simulate.add_argument(
        "--seed", type=integer(0, SEED_MAX), default=0, help="random seed of the arrivals and service times"
    )
    add_json(simulate, "print the reports as JSON")
    simulate.set_defaults(handler=_simulate)


def _add_world(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile", required=True, metavar="PROFILE.json", type=non_empty, help="made by nb2pipe profile"
    )
    parser.add_argument(
        "--trace", required=True, metavar="TRACE", type=non_empty, help="requests per second, one number per line"
    )
    parser.add_argument(
        "--slo-ms", type=real(0, above_low=True), required=True, metavar="MS", help="p99 latency objective"
    )
    parser.add_argument("--cold-start-s", type=real(0), default=30.0, metavar="S", help="replica start-up time (30)")
    parser.add_argument(
        "--price-per-replica-hour", type=real(0), default=1.0, metavar="P", help="what one replica costs an hour (1.0)"
    )
    parser.add_argument("--variants", metavar="A,B", help="variants of the profile to use (default: all)")
    parser.add_argument(
        "--interval-s", type=integer(1, INT32_MAX), default=30, metavar="S", help="planning interval (30)"
    )
    parser.add_argument(
        "--accuracy-value", type=real(), default=1.0, metavar="R", help="replicas one point of accuracy is worth (1.0)"
    )
    parser.add_argument("--days", metavar="A-B", help="days of the trace to plan or simulate (default: the last)")
    parser.add_argument("--fit-days", metavar="A-B", help="days to fit forecasts on (default: all before --days)")
    parser.add_argument(
        "--scale", type=real(0, above_low=True), default=1.0, help="multiply the trace's rates (e.g. 10)"
    )
    parser.add_argument(
        "--violation-target",
        type=real(0, 100),
        default=0.8,
        metavar="PCT",
        help="the planner's forecast is the cheapest whose simulated SLO violations on the history's last "
        "2 days stay within this percent (0.8)",
    )


def _choices(args: argparse.Namespace) -> Choices:
    from nb2pipe.capacity.policies import Reactive
    from nb2pipe.capacity.scenario import Choices
    from nb2pipe.capacity.trace import DaySpan

    reactive = Reactive(
        metric=getattr(args, "reactive_metric", "utilization"), target=getattr(args, "reactive_target", 0.7)
    )
    if not 0 < reactive.target <= 1:
        raise Nb2PipeError(f"--reactive-target {reactive.target:g} must be in (0, 1]")
    return Choices(
        slo_ms=args.slo_ms,
        days=DaySpan.parse(args.days, "--days") if args.days else None,
        fit_days=DaySpan.parse(args.fit_days, "--fit-days") if args.fit_days else None,
        scale=args.scale,
        cold_start_s=args.cold_start_s,
        interval_s=args.interval_s,
        price_per_replica_hour=args.price_per_replica_hour,
        accuracy_value=args.accuracy_value,
        variants=tuple(v for v in (args.variants or "").split(",") if v),
        baseline_variant=getattr(args, "baseline_variant", None),
        baseline_batch=getattr(args, "baseline_batch", 1),
        violation_target=args.violation_target / 100,
        seed=getattr(args, "seed", 0),
        reactive=reactive,
    )


def _policy_names(args: argparse.Namespace) -> list[str]:
    """The runs asked for, checked before minutes of simulation."""
    from nb2pipe.capacity.policies import policy_named

    default = "reactive,plan,deployed" if args.plan else "reactive,planner"
    names = [n.strip() for n in (args.policy or default).split(",") if n.strip()]
    if not names:
        raise Nb2PipeError("--policy names no policy; e.g. --policy reactive,planner")
    for name in names:
        policy_named(name)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise Nb2PipeError(f"--policy lists {', '.join(repeated)} more than once; each run needs its own policy")
    replaying = [n for n in names if n in PLAN_POLICIES]
    if replaying and not args.plan:
        raise Nb2PipeError(f"the {replaying[0]} policy replays a plan: give --plan PLAN.json (made by nb2pipe plan -o)")
    if args.plan and not replaying:
        raise Nb2PipeError(
            f"--plan is replayed by the plan and deployed policies: add them, e.g. --policy {','.join(names)},plan"
        )
    if args.compare_to and args.compare_to not in names:
        raise Nb2PipeError(f"--compare-to {args.compare_to!r} is not one of the runs ({', '.join(names)})")
    return names


class _Progress:
    """How far a long step got, on stderr (stdout may be --json): nothing for short steps, a
    line every PROGRESS_EVERY_S seconds and one at the end for long ones."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.started = self.said = time.monotonic()

    def __call__(self, done: float) -> None:
        now = time.monotonic()
        if now - self.started >= PROGRESS_AFTER_S and now - self.said >= PROGRESS_EVERY_S:
            self.said = now
            _say(f"{self.label}: {done:.0%} simulated, {now - self.started:.0f} s")

    def finish(self, outcome: str = "done") -> None:
        elapsed = time.monotonic() - self.started
        if elapsed >= PROGRESS_AFTER_S:
            _say(f"{self.label}: {outcome} in {elapsed:.1f} s")


def _say(line: str) -> None:
    print(f"nb2pipe: {line}", file=sys.stderr, flush=True)


def _simulate(args: argparse.Namespace) -> int:
    from nb2pipe.capacity.plan import read_plan
    from nb2pipe.capacity.policies import policy_named
    from nb2pipe.capacity.profile import read_profile
    from nb2pipe.capacity.scenario import fitted_forecaster, scenario_for
    from nb2pipe.capacity.simulate import ratios, simulate
    from nb2pipe.capacity.trace import read_trace

    names = _policy_names(args)
    choices = _choices(args)
    plan = read_plan(args.plan) if args.plan else None
    if plan is not None:
        _warn_plan_differs(plan, choices, args.plan)
    scenario = scenario_for(read_profile(args.profile), read_trace(args.trace), choices, args.trace, plan)
    forecaster = None
    if any(policy_named(name).needs_forecaster for name in names):
        fitting = _Progress("fitting the online forecast")
        forecaster = fitted_forecaster(scenario, choices.violation_target, progress=fitting)[0]
        fitting.finish()
    reports = []
    for number, name in enumerate(names, 1):
        progress = _Progress(f"{name} ({number} of {len(names)})")
        reports.append(simulate(scenario, name, forecaster, progress))
        progress.finish()
    baseline = args.compare_to or ("reactive" if "reactive" in names else names[0])
    relative = ratios(reports, baseline)
    if args.json:
        print(json.dumps([dict(r.to_json(), relative_to=relative[r.policy]) for r in reports], indent=2))
        return 0
    _print_table(reports, relative, baseline)
    return 0


def _print_table(reports: list[Report], relative: dict[str, dict[str, object]], baseline: str) -> None:
    width = max(10, *(len(r.policy) for r in reports))
    print(
        f"{'policy':<{width}} {'cost':>10} {'x cost':>7} {'replica-h':>10} {'SLO viol %':>10} {'x viol':>7} "
        f"{'p99 ms':>9} {'accuracy':>9} {'reconf':>7}"
    )
    for r in reports:
        accuracy = f"{r.mean_accuracy:.4f}" if r.mean_accuracy is not None else "-"
        cost_ratio, violation_ratio = relative[r.policy]["cost"], relative[r.policy]["violations"]
        print(
            f"{r.policy:<{width}} {r.cost:>10.2f} {_ratio(cost_ratio):>7} {r.replica_hours:>10.1f} "
            f"{r.violation_percent:>10.3f} {_ratio(violation_ratio):>7} {r.p99_ms:>9.1f} {accuracy:>9} "
            f"{r.reconfigurations:>7}"
        )
    print(f"x: relative to {baseline} (- where {baseline}'s figure is 0); --json has each run's settings")


def _ratio(value: object) -> str:
    if not isinstance(value, float):
        return "-"
    return f"{value:.3g}" if value == 0 or value >= 0.01 else f"{value:.1e}"  # 7 characters at most


def _warn_plan_differs(plan: CapacityPlan, choices: Choices, source: str) -> None:
    """A plan replayed in another world than it was made for is a fair question, but say so."""
    made_for = {"--slo-ms": (plan.slo_ms, choices.slo_ms), "--cold-start-s": (plan.cold_start_s, choices.cold_start_s)}
    scale = plan.forecast.get("scale")
    if isinstance(scale, int | float):
        made_for["--scale"] = (float(scale), choices.scale)
    for option, (planned, given) in made_for.items():
        if planned != given:
            _say(f"warning: {source} was made for {option} {planned:g}; this simulation uses {given:g}")


def _plan(args: argparse.Namespace) -> int:
    from nb2pipe.capacity.plan import plan_to_json, write_plan
    from nb2pipe.capacity.planning import plan_from_trace
    from nb2pipe.capacity.profile import read_profile
    from nb2pipe.capacity.trace import read_trace

    if args.output:
        check_outputs([("-o", args.output)], [args.profile, args.trace], folders_made=True)
    choices = _choices(args)
    fitting = _Progress("fitting the online forecast") if args.online or choices.days else None
    plan = plan_from_trace(
        read_profile(args.profile), read_trace(args.trace), choices, args.trace, online=args.online, progress=fitting
    )
    if fitting is not None:
        fitting.finish()
    written = write_plan(args.output, plan) if args.output else None
    if args.json:
        print(json.dumps(plan_to_json(plan), indent=1))
        return 0
    summary = plan_to_json(plan)["summary"]
    print(f"forecast: {plan.forecast}")
    print(
        f"{summary['intervals']} intervals of {plan.interval_s} s: "
        f"{summary['replica_hours']} replica-hours, cost {summary['cost']}"
    )
    if summary["mean_accuracy"] is not None:
        print(f"mean accuracy {summary['mean_accuracy']}")
    header = f"{'variant':<16} {'min':>4} {'max':>4} {'rps/replica':>11} {'batch':>5} {'maxLatency':>10} {'peak %':>6}"
    print(f"{header}  device")
    for s in plan.serving:
        print(
            f"{s.variant:<16} {s.min_replicas:>4} {s.max_replicas:>4} {s.scale_target:>11} {s.max_batch_size:>5} "
            f"{s.max_latency_ms:>10} {s.traffic_percent:>6}  {s.device}"
        )
    print("peak %: each variant's share of the busiest interval; deploy --plan says which split it deploys")
    if written:
        print(f"wrote {written}")
    return 0
