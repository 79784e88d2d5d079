"""``nb2pipe`` command line: turns argv into one library call, prints the outcome, and picks
the exit code (0 ok, 1 problem with the input, 2 usage). Imports stay inside commands so
``nb2pipe --help`` starts fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from nb2pipe.cli.args import INT32_MAX, duration, integer, non_empty
from nb2pipe.cli.capacity import add_commands as add_capacity_commands
from nb2pipe.cli.explain import add_commands as add_explain_commands
from nb2pipe.cli.failures import describe_internal_error, is_broken_pipe, quiet_stdout
from nb2pipe.cli.lifecycle import add_commands as add_lifecycle_commands
from nb2pipe.cli.monitoring import add_commands as add_monitoring_commands
from nb2pipe.cli.profile import add_commands as add_profile_commands
from nb2pipe.cli.retrain import add_commands as add_retrain_commands
from nb2pipe.errors import CompileError, Diagnostic, Nb2PipeError
from nb2pipe.version import __version__

#: metrics on the one summary line of nb2pipe run
SUMMARY_METRICS = 12


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nb2pipe",
        description="Turn a tagged Jupyter notebook into a Kubeflow Pipelines v2 pipeline.",
    )
    parser.add_argument("--version", action="version", version=f"nb2pipe {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    compile_ = commands.add_parser(
        "compile",
        help="compile a notebook into KFP IR YAML",
        description="Compile a tagged notebook into a Kubeflow Pipelines v2 IR YAML file.",
    )
    compile_.add_argument("notebook", metavar="NB", type=non_empty, help="the .ipynb file")
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
    compile_.add_argument("--json", action="store_true", help="print the result as one JSON object")
    compile_.set_defaults(handler=_compile)

    run = commands.add_parser(
        "run",
        help="compile and run a notebook's pipeline locally (kfp.local)",
        description="Compile a notebook and run its pipeline on the embedded engine, kfp.local: the same "
        "components a cluster runs, independent steps at the same time.",
    )
    run.add_argument("notebook", metavar="NB", type=non_empty, help="the .ipynb file")
    run.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="set a pipeline parameter (repeatable)"
    )
    run.add_argument(
        "--workdir", metavar="DIR", type=non_empty, help="where runs are kept (default: .nb2pipe/ beside the notebook)"
    )
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
    run.add_argument("--json", action="store_true", help="print the result as one JSON object, no progress display")
    run.set_defaults(handler=_run)

    submit = commands.add_parser(
        "submit",
        help="compile a notebook and start it on Kubeflow Pipelines",
        description="Compile a notebook, upload the pipeline (a new version when it exists) and start a run, "
        "or a recurring run with --schedule/--every. Token: KF_PIPELINES_TOKEN, else the in-cluster "
        "service-account token.",
    )
    submit.add_argument("notebook", metavar="NB", type=non_empty, help="the .ipynb file")
    submit.add_argument(
        "--host", metavar="URL", help="Kubeflow Pipelines endpoint (default: the notebook's metadata.nb2pipe.kfp_host)"
    )
    submit.add_argument("--experiment", metavar="NAME", help="experiment (default: notebook metadata, else Default)")
    submit.add_argument("--run-name", metavar="NAME", help="name of the run (default: pipeline name and time)")
    submit.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="set a parameter")
    submit.add_argument("--namespace", metavar="NS", help="Kubeflow profile namespace (multi-user clusters)")
    when = submit.add_mutually_exclusive_group()
    when.add_argument("--schedule", metavar="CRON", help="recurring run on a 5-field cron schedule, e.g. '0 3 * * *'")
    when.add_argument("--every", metavar="DURATION", type=duration, help="recurring run at an interval, e.g. 1h or 30m")
    _add_image_options(submit)
    submit.add_argument("--json", action="store_true", help="print the result as one JSON object")
    submit.set_defaults(handler=_submit)
    add_lifecycle_commands(commands)
    add_monitoring_commands(commands)
    add_explain_commands(commands)
    add_retrain_commands(commands)
    add_profile_commands(commands)
    add_capacity_commands(commands)
    return parser


def _add_image_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", help="container image for steps without an image: tag")
    parser.add_argument(
        "--base-image",
        metavar="IMAGE",
        help="base image that steps without an image install their pinned packages into "
        "(default: $NB2PIPE_BASE_IMAGE, else python:X.Y-slim of this Python)",
    )


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


class UsageError(Nb2PipeError):
    """The command line itself is wrong (argparse's errors, raised instead of exiting)."""

    exit_code = 2

    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message)
        self.usage = usage


class _Parser(argparse.ArgumentParser):
    """argparse prints and exits on a bad command line; raising lets :func:`main` answer
    ``--json`` with a JSON object too. Subcommand parsers are of the same class."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, f"{self.format_usage()}{self.prog}: error: {message}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code: 0 ok, 1 a problem with the input (or a bug in
    nb2pipe, reported in one line), 130 interrupted. A usage error (and ``--help``) raises
    :class:`SystemExit` (2, and 0) as argparse does. With ``--json`` every outcome prints
    exactly one JSON object on stdout."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    as_json = _asks_for_json(arguments)
    try:
        return _main(arguments, as_json)
    except BrokenPipeError as exc:
        if is_broken_pipe(sys.stdout) or is_broken_pipe(sys.stderr):
            quiet_stdout()  # the reader (``| head``) has gone: say nothing more
            return 1
        try:
            return _internal_error(exc, as_json)
        except BrokenPipeError:
            quiet_stdout()
            return 1


def _main(arguments: list[str], as_json: bool) -> int:
    try:
        args = build_parser().parse_args(arguments)
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except CompileError as exc:
        if as_json:
            _print_json_error(exc.summary, exc.exit_code, diagnostics=exc.diagnostics)
        else:
            print(str(exc), file=sys.stderr)
        return exc.exit_code
    except UsageError as exc:
        print(exc.usage, file=sys.stderr)
        if as_json:
            _print_json_error(str(exc), exc.exit_code, kind="usage")
        raise SystemExit(exc.exit_code) from None  # as argparse does: callers of main() rely on it
    except Nb2PipeError as exc:
        print(f"nb2pipe: {exc}", file=sys.stderr)
        if as_json:
            _print_json_error(str(exc), exc.exit_code)
        return exc.exit_code
    except KeyboardInterrupt:
        print("nb2pipe: interrupted", file=sys.stderr)
        if as_json:
            _print_json_error("interrupted", 130, kind="interrupted")
        return 130
    except BrokenPipeError:
        raise
    except Exception as exc:  # anything else is a bug in nb2pipe: one line, the traceback in a file
        return _internal_error(exc, as_json)


def _asks_for_json(arguments: list[str]) -> bool:
    """Whether ``--json`` (or an abbreviation argparse would take) comes before ``--``."""
    for argument in arguments:
        if argument == "--":
            return False
        if len(argument) > 2 and "--json".startswith(argument):
            return True
    return False


def _print_json_error(
    message: str, exit_code: int, *, kind: str = "error", diagnostics: Sequence[Diagnostic] = (), **extra: object
) -> None:
    report: dict[str, object] = {"error": {"kind": kind, "message": message, "exit_code": exit_code, **extra}}
    if diagnostics:
        report["diagnostics"] = [d.to_json() for d in diagnostics]
    print(json.dumps(report, indent=2))


def _internal_error(exc: BaseException, as_json: bool) -> int:
    line, saved = describe_internal_error(exc)
    print(line, file=sys.stderr)
    if as_json:
        _print_json_error(line.removeprefix("nb2pipe: "), 1, kind="internal", traceback_file=saved)
    return 1


def run() -> None:
    """The ``nb2pipe`` console script: flush stdout here, where a reader that has gone can still
    be answered quietly, rather than at interpreter exit."""
    try:
        code: int | str | None = main()
    except SystemExit as exit:  # usage errors, --help, --version
        code = exit.code
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        quiet_stdout()
        code = code or 1
    sys.exit(code)
