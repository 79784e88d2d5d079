"""``nb2pipe autoscale``: argv -> the control loop over a cluster's KServe resources, or (``--local``)
over a local serving group of ``nb2pipe serve`` replicas behind a router, read through a Prometheus.

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
    from nb2pipe.capacity.control import Actuator, RateSource
    from nb2pipe.capacity.plan import CapacityPlan
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
        "nb2pipe deploy SERVICE --plan. With --local the same loop scales the plan's variants as nb2pipe serve "
        "replicas on this machine behind a router (its URL is printed on stderr) and reads the rate through "
        "Prometheus: --prometheus-url, or else Debian's prometheus started on 127.0.0.1 scraping the router.",
    )
    autoscale.add_argument("service", metavar="SERVICE", type=non_empty, help="the name deploy --plan deployed")
    autoscale.add_argument("--plan", required=True, metavar="PLAN.json", type=non_empty, help="made by nb2pipe plan")
    autoscale.add_argument(
        "--prometheus-url",
        metavar="URL",
        type=non_empty,
        help="e.g. http://prometheus:9090 (required on a cluster; with --local default: start one on 127.0.0.1)",
    )
    autoscale.add_argument(
        "--local",
        action="store_true",
        help="serve and scale the plan's variants on this machine (nb2pipe serve replicas behind a router)",
    )
    autoscale.add_argument(
        "--port",
        type=integer(0, 65535),
        default=0,
        metavar="N",
        help="with --local: the router's port on 127.0.0.1 (default: a free one)",
    )
    autoscale.add_argument(
        "--workdir",
        metavar="DIR",
        type=non_empty,
        help="with --local: nb2pipe's local store (the MLflow store unless $MLFLOW_TRACKING_URI; default .nb2pipe/ "
        "here); replica and Prometheus logs and data go to DIR/autoscale/SERVICE/",
    )
    autoscale.add_argument(
        "--query",
        metavar="PROMQL",
        type=non_empty,
        help="the request rate, all variants together ({window}: the rate window); default: the predict calls "
        "KServe's model servers count, as nb2pipe's KEDA trigger reads them (with --local: the requests the "
        "router received, counted as they arrive)",
    )
    autoscale.add_argument(
        "--knative",
        action="store_true",
        help="read the rate from Knative's queue-proxy (Serverless mode) instead of the model servers",
    )
    autoscale.add_argument("--namespace", metavar="NS", type=non_empty, help="default: the kubeconfig's")
    autoscale.add_argument(
        "--prometheus-namespace-label",
        metavar="LABEL",
        help="the label Prometheus puts a pod's namespace in, which the default query selects the service's "
        'namespace by (default: namespace; older configurations: kubernetes_namespace; "": every namespace)',
    )
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
    from nb2pipe.capacity.plan import read_plan

    if args.local and args.knative:
        raise Nb2PipeError("--knative reads a cluster's queue-proxy; a --local group has none")
    if not args.local and not args.prometheus_url:
        raise Nb2PipeError("--prometheus-url is required on a cluster (with --local one is started here)")
    if not args.local and (args.port or args.workdir):
        raise Nb2PipeError("--port and --workdir go with --local")
    if args.prometheus_namespace_label is not None:
        _check_namespace_label(args)
    plan = read_plan(args.plan)
    forecaster_of(plan)  # a day-ahead plan fails before any cluster is asked
    step = args.interval or float(plan.interval_s)
    settings = LoopSettings(step_s=step, rate_window_s=args.rate_window, stale_after_s=2 * step)
    turns = 1 if args.once else args.turns
    with contextlib.ExitStack() as stack:
        if args.local:
            source, actuator = _local(args, plan, stack)
        else:
            source, actuator = _cluster(args, plan)
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


def _check_namespace_label(args: argparse.Namespace) -> None:
    from nb2pipe.deploy_checks import namespace_label_problem

    if args.local or args.knative or args.query:
        raise Nb2PipeError(
            "--prometheus-namespace-label names a label of the default query on a cluster (the model servers' "
            "metric): leave it out with --local, --knative or --query"
        )
    problem = namespace_label_problem(args.prometheus_namespace_label)
    if problem:
        raise Nb2PipeError(f"--prometheus-namespace-label: {problem}")


def _cluster(args: argparse.Namespace, plan: CapacityPlan) -> tuple[RateSource, Actuator]:
    from nb2pipe.capacity.cluster_actuator import ClusterActuator
    from nb2pipe.capacity.prometheus import PrometheusRateSource, default_query, knative_query
    from nb2pipe.lifecycle.cluster import current_namespace
    from nb2pipe.lifecycle.standard_scaling import NAMESPACE_LABEL

    variants = [o.name for o in plan.options]
    namespace = args.namespace or current_namespace()
    actuator = ClusterActuator(args.service, variants, namespace)
    names = list(actuator.names.values())
    if args.query:
        query = args.query
    elif args.knative:
        query = knative_query([f"{name}-predictor" for name in names], namespace)
    else:
        label = NAMESPACE_LABEL if args.prometheus_namespace_label is None else args.prometheus_namespace_label
        query = default_query(names, namespace, label)
    return PrometheusRateSource(args.prometheus_url, query, timeout_s=args.timeout), actuator


def _local(args: argparse.Namespace, plan: CapacityPlan, stack: contextlib.ExitStack) -> tuple[RateSource, Actuator]:
    """The plan's variants as a local serving group, and a rate source over a Prometheus scraping
    its router; both stop (replicas, router, Prometheus, by PID) when ``stack`` closes, also on
    ^C or SIGTERM."""
    import os
    import signal

    from nb2pipe.capacity.local_group import LocalGroup
    from nb2pipe.capacity.local_prometheus import require_binary, running_prometheus
    from nb2pipe.capacity.prometheus import PrometheusRateSource, arrivals_query
    from nb2pipe.store.registry import TRACKING_ENV, local_store, tracking_uri

    uris = {s.variant: s.model_uri for s in plan.serving}
    missing = sorted(name for name, uri in uris.items() if not uri)
    if missing:
        raise Nb2PipeError(
            f"the plan has no model URI for {', '.join(missing)}: make it with nb2pipe plan from a profile "
            "of registered models (models:/NAME/VERSION)"
        )
    if not args.prometheus_url:
        require_binary()  # before any replica starts
    folder = local_store(args.workdir) / "autoscale" / args.service
    # the replicas run in ``folder``: a relative default store would not be found from there
    environment = {**os.environ, TRACKING_ENV: tracking_uri(args.workdir)}
    # a SIGTERM (a service manager, a timeout) unwinds like ^C: the with-blocks stop what runs
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    stack.callback(signal.signal, signal.SIGTERM, previous)
    group = stack.enter_context(
        LocalGroup(
            args.service,
            {name: str(uri) for name, uri in uris.items()},
            folder,
            environment=environment,
            router_port=args.port,
        )
    )
    url = args.prometheus_url
    if not url:
        prometheus = stack.enter_context(running_prometheus([group.url.removeprefix("http://")], folder / "prometheus"))
        url = prometheus.url
    print(
        f"router: {group.url} (predict: {group.url}/v1/models/{args.service}:predict); prometheus: {url}",
        file=sys.stderr,
        flush=True,
    )
    # the router counts requests as they arrive: the demand, also while the replicas are overloaded
    query = args.query or arrivals_query([args.service])
    return PrometheusRateSource(url, query, timeout_s=args.timeout), group
