"""``nb2pipe autoscale``: argv -> the control loop over a cluster's KServe resources.

numpy, the kubernetes client and the loop load inside the handler, so ``nb2pipe --help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import TYPE_CHECKING, TextIO

from nb2pipe.cli.args import INT32_MAX, integer, non_empty, real
from nb2pipe.errors import Nb2PipeError

if TYPE_CHECKING:
    from nb2pipe.cli.args import Commands


def add_commands(commands: Commands) -> None:
    autoscale = commands.add_parser(
        "autoscale",
        help="run the capacity planner as a control loop on a cluster's InferenceServices",
        description="Every interval: read the request rate from Prometheus, forecast each coming interval's peak "
        "with the plan's online forecaster, choose replicas, batch size and split with the plan's search, and "
        "patch the InferenceService(s) (minReplicas as a floor one cold start ahead, maxReplicas, batcher) and, "
        "for several variants, the InferenceGraph's weights. Each decision is printed as a JSON line. The plan "
        "must come from nb2pipe plan --days (it holds the fitted online forecaster) and be deployed with "
        "nb2pipe deploy SERVICE --plan.",
    )
    autoscale.add_argument("service", metavar="SERVICE", type=non_empty, help="the name deploy --plan deployed")
    autoscale.add_argument("--plan", required=True, metavar="PLAN.json", type=non_empty, help="made by nb2pipe plan")
    autoscale.add_argument(
        "--prometheus-url", required=True, metavar="URL", type=non_empty, help="e.g. http://prometheus:9090"
    )
    autoscale.add_argument(
        "--query",
        metavar="PROMQL",
        type=non_empty,
        help="the request rate, all variants together ({window}: the rate window); default: the predict calls "
        "KServe's model servers count, as nb2pipe's KEDA trigger reads them",
    )
    autoscale.add_argument(
        "--knative",
        action="store_true",
        help="read the rate from Knative's queue-proxy (Serverless mode) instead of the model servers",
    )
    autoscale.add_argument("--namespace", metavar="NS", type=non_empty, help="default: the kubeconfig's")
    autoscale.add_argument(
        "--interval",
        type=real(0, above_low=True),
        metavar="S",
        help="seconds between decisions (default: the plan's interval); it also decides one cold start "
        "before each interval",
    )
    autoscale.add_argument(
        "--rate-window",
        type=real(1),
        default=60.0,
        metavar="S",
        help="each reading is the rate over this many seconds (60)",
    )
    autoscale.add_argument(
        "--timeout", type=real(0, above_low=True), default=5.0, metavar="S", help="Prometheus answer timeout (5)"
    )
    autoscale.add_argument("--decisions", metavar="FILE", type=non_empty, help="also append the JSON lines here")
    autoscale.add_argument("--dry-run", action="store_true", help="print decisions, change nothing")
    autoscale.add_argument("--once", action="store_true", help="take one decision and exit")
    autoscale.add_argument(
        "--turns", type=integer(1, INT32_MAX), metavar="N", help="take N decisions and exit (default: until stopped)"
    )
    autoscale.set_defaults(handler=_autoscale)


def _autoscale(args: argparse.Namespace) -> int:
    import time

    from nb2pipe.capacity.autoscale import Controller, Loop, LoopSettings, decision_logger, forecaster_of
    from nb2pipe.capacity.cluster_actuator import ClusterActuator
    from nb2pipe.capacity.plan import read_plan
    from nb2pipe.capacity.prometheus import PrometheusRateSource, default_query, knative_query
    from nb2pipe.lifecycle.cluster import current_namespace

    plan = read_plan(args.plan)
    forecaster_of(plan)  # a day-ahead plan fails before any cluster is asked
    step = args.interval or float(plan.interval_s)
    settings = LoopSettings(step_s=step, rate_window_s=args.rate_window, stale_after_s=2 * step)
    variants = [o.name for o in plan.options]
    namespace = args.namespace or current_namespace()
    actuator = ClusterActuator(args.service, variants, namespace)
    names = list(actuator.names.values())
    if args.query:
        query = args.query
    elif args.knative:
        query = knative_query([f"{name}-predictor" for name in names], namespace)
    else:
        query = default_query(names)
    source = PrometheusRateSource(args.prometheus_url, query, timeout_s=args.timeout)
    turns = 1 if args.once else args.turns
    with contextlib.ExitStack() as stack:
        streams: list[TextIO] = [sys.stdout]
        if args.decisions:
            try:
                streams.append(stack.enter_context(open(args.decisions, "a", encoding="utf-8")))
            except OSError as exc:
                raise Nb2PipeError(f"--decisions {args.decisions}: cannot append to it ({exc.strerror})") from None
        loop = Loop(
            Controller(plan, settings),
            source,
            actuator,
            clock=time.time,
            sleep=time.sleep,
            log=decision_logger(*streams),
            dry_run=args.dry_run,
        )
        loop.run(turns)
    return 0
