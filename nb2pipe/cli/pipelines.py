"""``nb2pipe compile``, ``nb2pipe run`` and ``nb2pipe submit``: argv -> one library call each.

The compiler (kfp, nbformat) and the runners load inside the handlers, so ``nb2pipe --help``
stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from nb2pipe.cli.args import (
    INT32_MAX,
    add_json,
    add_kubeflow_namespace,
    add_notebook,
    add_parameters,
    add_workdir,
    duration,
    integer,
    non_empty,
)
from nb2pipe.errors import Diagnostic, Nb2PipeError

if TYPE_CHECKING:
    from nb2pipe.cli.args import Commands
    from nb2pipe.ir import PackageIndex

#: metrics on the one summary line of nb2pipe run
SUMMARY_METRICS = 12


def add_commands(commands: Commands) -> None:
    compile_ = commands.add_parser(
        "compile",
        help="compile a notebook into KFP IR YAML",
        description="Compile a tagged notebook into a Kubeflow Pipelines v2 IR YAML file.",
    )
    add_notebook(compile_)
    compile_.add_argument(
        "-o",
        "--output",
        metavar="OUT.yaml",
        type=non_empty,
        help="where to write the pipeline (default: NB.pipeline.yaml beside the notebook)",
    )
    compile_.add_argument("--dsl", metavar="OUT.py", type=non_empty, help="also write a readable KFP DSL file")
    compile_.add_argument(
        "--monitoring",
        action="store_true",
        help="compile the notebook's monitoring pipeline instead: drift of served traffic gates retraining "
        "(default output NB.monitor.pipeline.yaml; no --dsl)",
    )
    compile_.add_argument("--name", help="pipeline name (default: notebook metadata, else the file name)")
    _add_image_options(compile_)
    _add_index_options(compile_)
    add_json(compile_)
    compile_.set_defaults(handler=_compile)

    run = commands.add_parser(
        "run",
        help="compile and run a notebook's pipeline locally (kfp.local)",
        description="Compile a notebook and run its pipeline on the embedded engine, kfp.local: the same "
        "components a cluster runs, independent steps at the same time.",
    )
    add_notebook(run)
    add_parameters(run, "set a pipeline parameter (repeatable)")
    add_workdir(run, "where runs are kept (default: .nb2pipe/ beside the notebook)")
    run.add_argument("--resume", metavar="RUN_ID", help="rerun the failed or interrupted steps of an earlier run")
    run.add_argument(
        "--run-id", metavar="RUN_ID", help="id of the new run (default: pipeline name and time); must not exist yet"
    )
    run.add_argument(
        "--parallel", type=integer(1, INT32_MAX), metavar="N", help="most steps at once (default: CPU count)"
    )
    run.add_argument(
        "--keep-variables",
        action="store_true",
        help="also keep the notebook's final variables (DIR/runs/RUN_ID/variables/)",
    )
    run.add_argument(
        "--verbose",
        action="store_true",
        help="say what the steps' fork server preloaded, what it skipped and which steps start cold (stderr)",
    )
    _add_index_options(run)
    add_json(run, "print the result as one JSON object, no progress display")
    run.set_defaults(handler=_run)

    submit = commands.add_parser(
        "submit",
        help="compile a notebook and start it on Kubeflow Pipelines",
        description="Compile a notebook, upload the pipeline (a new version when it exists) and start a run, "
        "or a recurring run with --schedule/--every. Token: KF_PIPELINES_TOKEN, else the in-cluster "
        "service-account token.",
    )
    add_notebook(submit)
    submit.add_argument(
        "--host", metavar="URL", help="Kubeflow Pipelines endpoint (default: the notebook's metadata.nb2pipe.kfp_host)"
    )
    submit.add_argument("--experiment", metavar="NAME", help="experiment (default: notebook metadata, else Default)")
    submit.add_argument("--run-name", metavar="NAME", help="name of the run (default: pipeline name and time)")
    add_parameters(submit, "set a parameter")
    add_kubeflow_namespace(submit)
    when = submit.add_mutually_exclusive_group()
    when.add_argument("--schedule", metavar="CRON", help="recurring run on a 5-field cron schedule, e.g. '0 3 * * *'")
    when.add_argument("--every", metavar="DURATION", type=duration, help="recurring run at an interval, e.g. 1h or 30m")
    _add_image_options(submit)
    _add_index_options(submit)
    add_json(submit)
    submit.set_defaults(handler=_submit)


def _add_image_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", help="container image for steps without an image: tag")
    parser.add_argument(
        "--base-image",
        metavar="IMAGE",
        help="base image that steps without an image install their pinned packages into "
        "(default: $NB2PIPE_BASE_IMAGE, else python:X.Y-slim of this Python)",
    )


def _add_index_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pip-index-url",
        action="append",
        default=[],
        metavar="URL",
        type=_index_url,
        help="package index every step installs from (repeatable: the first is pip's --index-url, the others "
        "--extra-index-url; default: the notebook's metadata.nb2pipe.pip_index_urls, else pip's own)",
    )
    parser.add_argument(
        "--pip-trusted-host",
        action="append",
        default=[],
        metavar="HOST",
        type=_trusted_host,
        help="host pip trusts without https (repeatable; default: metadata.nb2pipe.pip_trusted_hosts)",
    )


def _index_url(text: str) -> str:
    from nb2pipe.notebook.pipeline_settings import index_url_problem

    problem = index_url_problem(text)
    if problem is not None:  # ArgumentTypeError: argparse shows the message, not the value (a token)
        raise argparse.ArgumentTypeError(f"{problem[0]}; {problem[1]}")
    return text


def _trusted_host(text: str) -> str:
    from nb2pipe.notebook.pipeline_settings import trusted_host_problem

    problem = trusted_host_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{problem[0]}; {problem[1]}")
    return text


def _package_index(args: argparse.Namespace) -> PackageIndex | None:
    """The index given on the command line; None: the notebook's."""
    from nb2pipe.ir import PackageIndex

    if not args.pip_index_url and not args.pip_trusted_host:
        return None
    return PackageIndex(tuple(dict.fromkeys(args.pip_index_url)), tuple(dict.fromkeys(args.pip_trusted_host)))


def _compile(args: argparse.Namespace) -> int:
    from nb2pipe.compiler import compile_notebook

    if args.monitoring and args.dsl:
        raise Nb2PipeError("--dsl is not available with --monitoring")
    result = compile_notebook(
        args.notebook,
        output=args.output,
        dsl=args.dsl,
        name=args.name,
        image=args.image,
        base_image=args.base_image,
        monitoring=args.monitoring,
        package_index=_package_index(args),
    )
    plan = result.compiled.plan
    if args.json:
        print(
            json.dumps(
                {
                    "output": str(result.output),
                    "dsl": str(result.dsl_output) if result.dsl_output else None,
                    "pipeline": plan.name,
                    "steps": [
                        {
                            "name": s.name,
                            "upstream": list(s.upstream),
                            "inputs": [i.name for i in s.inputs],
                            "outputs": [o.name for o in s.outputs],
                        }
                        for s in plan.steps
                    ],
                    "lifecycle": [
                        {
                            "register": item.register_task,
                            "model_name": item.registration.model_name,
                            "deploy": item.deploy_task,
                            "service": item.deployment.service if item.deployment else None,
                            "explain": [name for _, name in item.explain_tasks],
                        }
                        for item in plan.lifecycle
                    ],
                    "drift": [
                        {"task": item.task, "current": item.current.name, "reference": item.reference.name}
                        for item in plan.drift
                    ],
                    "diagnostics": [d.to_json() for d in result.compiled.warnings],
                },
                indent=2,
            )
        )
        return 0
    _print_diagnostics(result.compiled.warnings)
    written = str(result.output) + (f" and {result.dsl_output}" if result.dsl_output else "")
    lifecycle = [name for item in plan.lifecycle for name in (item.register_task, item.deploy_task) if name]
    lifecycle += [name for item in plan.lifecycle for _, name in item.explain_tasks]
    lifecycle += [item.task for item in plan.drift]
    print(
        f"wrote {written}: pipeline {plan.name!r}, {len(plan.steps)} step(s): "
        + ", ".join(s.name for s in plan.steps)
        + (f"; then {', '.join(lifecycle)}" if lifecycle else "")
        + "".join(f"; sub-pipeline {sub.task} ({sub.path})" for sub in plan.subpipelines)
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    from nb2pipe.runners.local import run_notebook
    from nb2pipe.runners.progress import lifecycle_lines, shown_progress

    with shown_progress(not args.json) as progress:
        result = run_notebook(
            args.notebook,
            parameters=args.param,
            workdir=args.workdir,
            resume=args.resume,
            keep_variables=args.keep_variables,
            parallel=args.parallel,
            observer=progress,
            run_id=args.run_id,
            package_index=_package_index(args),
            verbose=args.verbose,
        )
    if args.json:
        report = result.to_json()
        report["failures"] = [f.to_json() for f in result.failures]
        print(json.dumps(report, indent=2))
    else:
        for failure in result.failures:
            print(failure.describe(), file=sys.stderr)
        shown = sorted(result.metrics.items())[:SUMMARY_METRICS]
        metrics = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown)
        if len(result.metrics) > len(shown):  # e.g. a drift task's p-value per feature
            metrics += f" and {len(result.metrics) - len(shown)} more (--json, or index.html in the outputs)"
        print(f"run {result.run_id} {result.status}" + (f": {metrics}" if metrics else ""))
        for line in lifecycle_lines(result):
            print(line)
        print(f"outputs: {result.run_dir}")
        if result.failures:
            print(
                f"after fixing, finish it with: nb2pipe run {args.notebook} --resume {result.run_id}", file=sys.stderr
            )
    return 0 if result.status == "succeeded" else 1


def _submit(args: argparse.Namespace) -> int:
    from nb2pipe.runners.kubeflow import submit_notebook

    submission = submit_notebook(
        args.notebook,
        host=args.host,
        experiment=args.experiment,
        run_name=args.run_name,
        parameters=args.param,
        namespace=args.namespace,
        cron=args.schedule,
        every=args.every,
        image=args.image,
        base_image=args.base_image,
        package_index=_package_index(args),
    )
    if args.json:
        print(json.dumps(submission.to_json(), indent=2))
    else:
        kind = "recurring run" if submission.recurring_run_id else "run"
        print(f"started {kind}: {submission.url}")
    return 0


def _print_diagnostics(diagnostics: Sequence[Diagnostic]) -> None:
    for diagnostic in diagnostics:
        print(diagnostic.format(), file=sys.stderr)
