"""``nb2pipe serve``, ``nb2pipe deploy`` and ``nb2pipe endpoints``: argv -> one library call.

Kept apart from :mod:`nb2pipe.cli` so each module stays small; imports stay inside the
handlers (kserve and mlflow take seconds to load).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from nb2pipe.cli.args import (
    INT32_MAX,
    INT64_MAX,
    add_json,
    add_workdir,
    integer,
    non_empty,
    real,
)
from nb2pipe.errors import Nb2PipeError
from nb2pipe.ir import DEPLOY_MODES, EXPLAIN_METHODS, RUNTIME_CHOICES, SCALE_METRICS

if TYPE_CHECKING:
    from nb2pipe.cli.args import Commands
    from nb2pipe.ir import DeploySettings
    from nb2pipe.lifecycle.batcher import BatchPolicy
    from nb2pipe.lifecycle.deploy_mode import ResolvedMode

#: a year: any longer wait is a mistake (and sleeps past threading.TIMEOUT_MAX overflow)
WAIT_MAX = 365 * 24 * 3600


def add_commands(commands: Commands) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve an MLflow model on KServe's model server (v1 and v2 protocols)",
        description="Serve an MLflow model (models:/NAME@ALIAS, models:/NAME/VERSION, runs:/..., or a folder) "
        "through KServe's ModelServer: /v1/models/NAME:predict and /v2/models/NAME/infer. Tracking URI: "
        "$MLFLOW_TRACKING_URI, else .nb2pipe/mlflow.db in the current folder.",
    )
    serve.add_argument("model_uri", metavar="MODEL_URI", type=non_empty)
    serve.add_argument("--name", help="model name in URLs (default: the registered name, else 'model')")
    serve.add_argument("--port", type=integer(0, 65535), default=8080, help="HTTP port (default 8080)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 for all)")
    serve.add_argument(
        "--log-payloads", metavar="DIR", type=non_empty, help="append every request and response to DIR (JSON lines)"
    )
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.add_argument(
        "--log-file",
        metavar="PATH",
        type=non_empty,
        help="log to PATH, rotated at 10 MB with 2 old files kept (default: stderr, as containers expect)",
    )
    serve.add_argument(
        "--read-timeout",
        metavar="SECONDS",
        type=real(0.0, 3600.0, above_low=True),
        default=30.0,
        help="seconds a client has to send a request's headers, and then its body (default 30; then 408)",
    )
    serve.add_argument(
        "--max-header-bytes",
        metavar="BYTES",
        type=integer(1024, 16 * 1024 * 1024),
        default=64 * 1024,
        help="largest request line and headers accepted (default 65536; bigger: 431)",
    )
    serve.add_argument(
        "--model-repository",
        action="store_true",
        help="answer the v2 model repository extension (POST /v2/repository/models/NAME/load and /unload): "
        "anyone who reaches the port can then take the model offline; off by default",
    )
    serve.add_argument(
        "--explainer",
        choices=EXPLAIN_METHODS,
        help="also answer /v1/models/NAME:explain with Anchor or Integrated Gradients (needs nb2pipe[explain])",
    )
    serve.add_argument(
        "--reference",
        metavar="DATA",
        help="data the explainer is fitted on (default: the training data kept with the registered version)",
    )
    serve.add_argument(
        "--max-batch-size",
        metavar="N",
        type=integer(1, 100_000),
        help="KServe's batcher: merge the rows of requests arriving together into one predict call of at most N "
        "rows (default when only --max-latency-ms is given: 32, KServe's)",
    )
    serve.add_argument(
        "--max-latency-ms",
        metavar="MS",
        type=integer(0, 600_000),
        help="KServe's batcher: send a batch at most MS ms after its first request arrived, full or not "
        "(default when only --max-batch-size is given: 5000, KServe's)",
    )
    serve.set_defaults(handler=_serve)

    deploy = commands.add_parser(
        "deploy",
        help="deploy an MLflow model to KServe (or print its InferenceService)",
        description="Build a KServe InferenceService for an MLflow model and apply it to the cluster in your "
        "kubeconfig (or in-cluster), waiting until it is Ready; --dry-run prints or writes the YAML only.",
    )
    deploy.add_argument("model_uri", metavar="MODEL_URI", nargs="?", help="the model (with --plan: default the plan's)")
    deploy.add_argument("--name", required=True, help="InferenceService name (lowercase letters, digits, '-')")
    deploy.add_argument(
        "--gpu",
        type=integer(high=INT64_MAX),
        default=0,
        metavar="N",
        help="GPUs per replica (nvidia.com/gpu unless --gpu-type)",
    )
    deploy.add_argument(
        "--gpu-type",
        metavar="TYPE",
        help="what --gpu counts: a resource name with '/' (nvidia.com/mig-1g.18gb, amd.com/gpu), or a GPU product as "
        "NVIDIA's GPU Feature Discovery labels nodes (NVIDIA-H100-80GB-HBM3, or as nvidia-smi prints it: "
        "'NVIDIA H100 80GB HBM3'), which pins the replicas to nodes labelled nvidia.com/gpu.product=TYPE",
    )
    deploy.add_argument(
        "--min-replicas", type=integer(high=INT32_MAX), metavar="N", help="fewest replicas; 0 scales to zero"
    )
    deploy.add_argument("--max-replicas", type=integer(high=INT32_MAX), metavar="N", help="most replicas")
    deploy.add_argument("--scale-metric", choices=SCALE_METRICS, help="what the autoscaler watches")
    deploy.add_argument(
        "--scale-target", type=integer(high=INT32_MAX), metavar="N", help="target value of the scale metric per replica"
    )
    deploy.add_argument(
        "--container-concurrency", type=integer(high=INT64_MAX), metavar="N", help="hard limit of requests per replica"
    )
    deploy.add_argument(
        "--canary", type=integer(high=INT64_MAX), metavar="PCT", help="share of traffic for this new version (0-100)"
    )
    deploy.add_argument(
        "--mode",
        choices=DEPLOY_MODES,
        help="KServe's deployment mode: knative (KPA: concurrency/rps, scale to zero, canary) or standard "
        "(a Deployment with an HPA: cpu/memory); default: the cluster's (inferenceservice-config), else knative",
    )
    deploy.add_argument(
        "--kserve-version",
        metavar="VERSION",
        help="the cluster's KServe version (e.g. 0.20): canaries in standard mode need spec.canary, new in 0.20",
    )
    deploy.add_argument(
        "--prometheus-url",
        metavar="URL",
        help="the Prometheus KEDA queries in standard mode to scale on rps or concurrency, or to zero",
    )
    deploy.add_argument(
        "--prometheus-namespace-label",
        metavar="LABEL",
        help="the label Prometheus puts a pod's namespace in, which KEDA's query selects the service's namespace by "
        '(default: namespace; older configurations: kubernetes_namespace; "": every namespace)',
    )
    deploy.add_argument(
        "--scale-query",
        metavar="PROMQL",
        help="with --prometheus-url: the PromQL query KEDA scales on, instead of nb2pipe's request query",
    )
    deploy.add_argument(
        "--runtime",
        choices=RUNTIME_CHOICES,
        help="the server that runs the model: auto (KServe's server for the format when its library version "
        "matches the training one, else nb2pipe-server), kserve, predictive, mlserver (on request only), nb2pipe",
    )
    deploy.add_argument(
        "--plan",
        metavar="PLAN.json",
        type=non_empty,
        help="take replicas, scale target, container concurrency and batcher from nb2pipe plan "
        "(several variants: one InferenceService each plus an InferenceGraph splitting traffic)",
    )
    deploy.add_argument("--variant", metavar="NAME", help="with --plan: deploy only this variant of the plan")
    deploy.add_argument(
        "--log-url",
        metavar="URL",
        help="log every request and response with KServe's logger: s3://BUCKET/PREFIX, gs:// or abfs:// store JSON "
        "objects drift checks and retraining read (docs/payload-logging.md); http(s):// posts CloudEvents",
    )
    deploy.add_argument("--explainer", choices=EXPLAIN_METHODS, help="add an explainer container answering :explain")
    deploy.add_argument("--namespace", metavar="NS", help="namespace (default: the kubeconfig context's)")
    deploy.add_argument("--dry-run", action="store_true", help="do not apply; print the YAML (or write it with -o)")
    deploy.add_argument(
        "-o", "--output", metavar="FILE", type=non_empty, help="write the InferenceService YAML to FILE"
    )
    deploy.add_argument(
        "--wait", type=real(0, WAIT_MAX), default=300, metavar="SECONDS", help="how long to wait for Ready"
    )
    add_json(deploy, "print the outcome as one JSON object")
    deploy.set_defaults(handler=_deploy)

    endpoints = commands.add_parser(
        "endpoints",
        help="list or stop local endpoints that pipeline deploy steps started",
        description="Local endpoints are nb2pipe serve processes a deploy step of nb2pipe run started on this "
        "machine, recorded in WORKDIR/endpoints/.",
    )
    add_workdir(endpoints, "the run's --workdir (default: .nb2pipe/ in the current folder)")
    endpoints.add_argument("--stop", metavar="SERVICE", action="append", default=[], help="stop SERVICE")
    endpoints.add_argument("--stop-all", action="store_true", help="stop every local endpoint")
    add_json(endpoints, "print one JSON object")
    endpoints.set_defaults(handler=_endpoints)


def _serve(args: argparse.Namespace) -> int:
    from nb2pipe.lifecycle.server import ServeOptions, serve
    from nb2pipe.monitoring.explain import build_explainer

    name = args.name or _default_name(args.model_uri)
    if args.reference and not args.explainer:
        raise Nb2PipeError("--reference is the explainer's data: add --explainer anchor or --explainer ig")
    serve(
        ServeOptions(
            args.model_uri,
            name,
            args.host,
            args.port,
            args.log_payloads,
            args.access_log,
            max_header_bytes=args.max_header_bytes,
            read_timeout=args.read_timeout,
            log_file=args.log_file,
            model_repository=args.model_repository,
            explainer=args.explainer,
            reference=args.reference,
            build_explainer=build_explainer if args.explainer else None,
            batching=_batching(args),
        )
    )
    return 0


def _batching(args: argparse.Namespace) -> BatchPolicy | None:
    """KServe's batcher when either flag is given, the other at KServe's default (a ``batcher: {}``)."""
    from nb2pipe.lifecycle.batcher import KSERVE_BATCH_SIZE, KSERVE_MAX_LATENCY_MS, BatchPolicy

    if args.max_batch_size is None and args.max_latency_ms is None:
        return None
    return BatchPolicy(
        args.max_batch_size or KSERVE_BATCH_SIZE,
        KSERVE_MAX_LATENCY_MS if args.max_latency_ms is None else args.max_latency_ms,
    )


def _default_name(uri: str) -> str:
    if uri.startswith("models:/"):
        return uri.removeprefix("models:/").split("@")[0].split("/")[0].lower()
    return "model"


def _deploy(args: argparse.Namespace) -> int:
    from nb2pipe.files import check_outputs
    from nb2pipe.ir import DeploySettings
    from nb2pipe.lifecycle.deploy import deploy_model

    if args.output:
        check_outputs([("-o", args.output)], [args.plan, args.model_uri])
    settings = DeploySettings(
        gpu=args.gpu,
        gpu_type=args.gpu_type or DeploySettings.gpu_type,
        min_replicas=args.min_replicas,
        max_replicas=args.max_replicas,
        scale_metric=args.scale_metric,
        scale_target=args.scale_target,
        container_concurrency=args.container_concurrency,
        canary_percent=args.canary,
        monitor=bool(args.log_url),
        logger_url=args.log_url,
        namespace=args.namespace,
        explainer=args.explainer,
        mode=args.mode,
        kserve_version=args.kserve_version,
        prometheus_url=args.prometheus_url,
        prometheus_namespace_label=DeploySettings.prometheus_namespace_label
        if args.prometheus_namespace_label is None
        else args.prometheus_namespace_label,
        scale_query=args.scale_query,
        runtime=args.runtime,
    )
    if args.plan:
        return _deploy_plan(args, settings)
    if args.variant:
        raise Nb2PipeError("--variant picks a variant of a plan: add --plan PLAN.json")
    if args.gpu_type and not args.gpu:
        raise Nb2PipeError(f"--gpu-type {args.gpu_type} names what --gpu counts: add --gpu N")
    if not args.model_uri:
        raise Nb2PipeError("name the model to deploy (MODEL_URI, e.g. models:/NAME@champion), or give --plan")
    deployment = deploy_model(
        args.model_uri, args.name, settings, dry_run=args.dry_run, output=args.output, wait_seconds=args.wait
    )
    for warning in deployment.warnings:
        print(f"nb2pipe: warning: {warning}", file=sys.stderr)
    if args.json:
        print(
            json.dumps(
                {
                    "resource": deployment.resource,
                    "written": str(deployment.written) if deployment.written else None,
                    "applied": deployment.applied.to_json() if deployment.applied else None,
                    "warnings": list(deployment.warnings),
                    "mode": deployment.mode.to_json() if deployment.mode else None,
                    "runtime": deployment.runtime.describe() if deployment.runtime else None,
                    "behaviour": list(deployment.behaviour),
                },
                indent=2,
            )
        )
        return 0
    _print_behaviour(
        deployment.mode, deployment.behaviour, deployment.runtime.describe() if deployment.runtime else None
    )
    if deployment.applied is not None:
        applied = deployment.applied
        print(f"{applied.action} InferenceService {applied.namespace}/{applied.name}: ready at {applied.url}")
    elif deployment.written is not None:
        print(f"wrote {deployment.written}")
    else:
        sys.stdout.write(deployment.yaml)
    return 0


def _deploy_plan(args: argparse.Namespace, settings: DeploySettings) -> int:
    from pathlib import Path

    from nb2pipe.capacity.deployment import render_plan
    from nb2pipe.capacity.plan import read_plan
    from nb2pipe.files import write_all_or_nothing
    from nb2pipe.lifecycle.cluster import apply_inference_service

    taken = [flag for flag, value in _planned_flags(args) if value is not None]
    if taken:
        raise Nb2PipeError(f"{', '.join(taken)}: the plan sets these; leave them out or deploy without --plan")
    planned = render_plan(read_plan(args.plan), args.name, settings, model_uri=args.model_uri, variant=args.variant)
    for warning in planned.warnings:
        print(f"nb2pipe: warning: {warning}", file=sys.stderr)
    if not args.json:
        # on stderr, like the behaviour: stdout may be the YAML
        print("nb2pipe: what this deploys, against the plan:", file=sys.stderr)
        for line in planned.summary:
            print(f"  {line}", file=sys.stderr)
        _print_behaviour(planned.mode, planned.behaviour)
    if args.output:
        write_all_or_nothing({Path(args.output): planned.yaml})
    described = {
        "mode": planned.mode.to_json() if planned.mode else None,
        "behaviour": list(planned.behaviour),
        "split": planned.split.to_json() if planned.split else None,
        "summary": list(planned.summary),
    }
    if args.dry_run:
        if args.json:
            print(json.dumps({"resources": list(planned.resources), "written": args.output, **described}, indent=2))
        elif args.output:
            print(f"wrote {args.output}")
        else:
            sys.stdout.write(planned.yaml)
        return 0
    if len(planned.resources) > 1:
        raise Nb2PipeError(
            "this plan serves several variants behind an InferenceGraph; write them with --dry-run -o FILE and "
            "kubectl apply -f FILE, or deploy one with --variant"
        )
    applied = apply_inference_service(planned.resources[0], wait_seconds=args.wait)
    if args.json:
        print(json.dumps({"resources": list(planned.resources), "applied": applied.to_json(), **described}, indent=2))
    else:
        print(f"{applied.action} InferenceService {applied.namespace}/{applied.name}: ready at {applied.url}")
    return 0


def _print_behaviour(mode: ResolvedMode | None, behaviour: tuple[str, ...], runtime: str | None = None) -> None:
    """The mode, the runtime chosen and what KServe will do with each setting, on stderr
    (stdout may be the YAML); an assumed mode was said as a warning already."""
    if mode is not None and not mode.assumed:
        print(f"nb2pipe: {mode.describe()}", file=sys.stderr)
    if runtime is not None:
        print(f"nb2pipe: {runtime}", file=sys.stderr)
    if behaviour:
        print("nb2pipe: what KServe will do:", file=sys.stderr)
    for line in behaviour:
        print(f"  {line}", file=sys.stderr)


def _planned_flags(args: argparse.Namespace) -> list[tuple[str, Any]]:
    return [
        ("--min-replicas", args.min_replicas),
        ("--max-replicas", args.max_replicas),
        ("--scale-metric", args.scale_metric),
        ("--scale-target", args.scale_target),
        ("--container-concurrency", args.container_concurrency),
    ]


def _endpoints(args: argparse.Namespace) -> int:
    from nb2pipe.lifecycle.endpoints import list_endpoints, read_endpoint, stop_endpoint

    services = [e.service for e in list_endpoints(args.workdir)] if args.stop_all else args.stop
    for service in services:  # all are checked before any is stopped
        if read_endpoint(service, args.workdir) is None:
            raise Nb2PipeError(f"no local endpoint named {service!r}; nb2pipe endpoints lists them")
    stopped = {service: stop_endpoint(service, args.workdir) for service in services}
    if args.json and (services or args.stop_all):
        print(json.dumps({"stopped": [{"service": s, "was_running": alive} for s, alive in stopped.items()]}, indent=2))
        return 0
    for service, alive in stopped.items():
        print(f"{service}: {'stopped' if alive else 'was not running; record removed'}")
    if services:
        return 0
    found = list_endpoints(args.workdir)
    if args.json:
        print(json.dumps([dict(e.to_json(), alive=e.alive) for e in found], indent=2))
        return 0
    if not found:
        print("no local endpoints")
    for endpoint in found:
        state = "running" if endpoint.alive else "stopped"
        print(f"{endpoint.service}\t{state}\t{endpoint.url}\t{endpoint.model_uri}\tpid {endpoint.pid}")
    return 0
